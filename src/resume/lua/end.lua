-- Removes a session for good, if the caller still holds it.
-- KEYS[1]  the session's hash
-- KEYS[2]  the session's buffer
-- ARGV[1]  the claim's epoch
-- Returns  { 1, state }, or 0 when the caller does not hold the session
local s = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'state')
if not s[1] or s[1] == 'away' or s[2] ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
-- The state names the rooms a resuming session is still listed in.
return { 1, s[3] }
