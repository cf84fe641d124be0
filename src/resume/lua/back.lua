-- Ends a resume: drops what the resume handed over, takes what was appended
-- since, and the session is live (appends answer 'live' from now on).
-- KEYS[1]  the session's hash
-- KEYS[2]  the session's buffer
-- ARGV[1]  the claim's epoch
-- Returns  { 'ok', messages, state } or { 'overflow', state } or { 'taken' }: the state names
-- the rooms the session was listed in while away, for the caller to unlist it.
local s = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'overflow', 'taken', 'state')
if s[1] ~= 'resuming' or s[2] ~= ARGV[1] then
  return { 'taken' }
end
if s[3] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return { 'overflow', s[5] }
end
redis.call('HSET', KEYS[1], 'status', 'live')
redis.call('HDEL', KEYS[1], 'taken')
local messages = redis.call('LRANGE', KEYS[2], tonumber(s[4]) or 0, -1)
redis.call('DEL', KEYS[2])
return { 'ok', messages, s[5] }
