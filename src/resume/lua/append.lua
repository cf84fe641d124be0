-- Keeps a message for an away (or resuming) session, bounded.
-- KEYS[1]  the session's hash
-- KEYS[2]  the session's buffer
-- ARGV[1]  the encoded message
-- ARGV[2]  the most messages kept
-- ARGV[3]  '' or the holder of a live session known dead (its lease expired):
--          kept for it too, to be handed over when it is released
-- Returns  'queued' | 'live <holder>' | 'overflow' | 'gone'
local s = redis.call('HMGET', KEYS[1], 'status', 'overflow', 'deadline', 'node')
if not s[1] then
  return 'gone'
end
if s[1] == 'live' and (ARGV[3] == '' or ARGV[3] ~= s[4]) then
  return 'live ' .. (s[4] or '')
end
if s[2] then
  return 'overflow'
end
if s[1] == 'away' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(s[3]) <= now then
    return 'gone'
  end
end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'overflow', 1)
  return 'overflow'
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('RPUSH', KEYS[2], seq .. ':' .. ARGV[1])
if s[1] == 'away' then
  -- The buffer lives exactly as long as its session.
  redis.call('PEXPIREAT', KEYS[2], tonumber(s[3]))
end
return 'queued'
