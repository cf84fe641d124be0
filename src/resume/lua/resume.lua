-- Claims an away session for a node and hands it the buffer, in one step: of
-- two nodes racing, one gets the messages and the other hears 'taken'. The
-- buffer is kept (with how much of it was handed over) until back: a resume
-- that never gets there hands the same messages over again.
-- KEYS[1]  the session's hash
-- KEYS[2]  the session's buffer
-- ARGV[1]  the resuming user
-- ARGV[2]  the resuming node
-- Returns  { 'ok', epoch, state, messages, device } or { refusal } or, when
--          the refusal removed the session, { refusal, device, state }, or
--          { 'taken', '', '', holder }
local s = redis.call('HMGET', KEYS[1], 'user', 'status', 'overflow', 'deadline', 'state', 'device', 'node')
if not s[1] then
  return { 'expired' }
end
if s[1] ~= ARGV[1] then
  return { 'forbidden' }
end
if s[2] ~= 'away' then
  -- Who holds it: the caller may find that holder dead and release the session itself.
  return { 'taken', '', '', s[7] }
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Removed for good: the device and state name the index entries to drop.
if tonumber(s[4]) <= now then
  redis.call('DEL', KEYS[1], KEYS[2])
  return { 'expired', s[6], s[5] }
end
if s[3] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return { 'overflow', s[6], s[5] }
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'status', 'resuming', 'node', ARGV[2])
redis.call('HDEL', KEYS[1], 'deadline', 'released', 'was')
-- Held again: it lives until its node sends it away (or a reaper releases it).
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
local messages = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('HSET', KEYS[1], 'taken', #messages)
return { 'ok', epoch, s[5], messages, s[6] }
