-- Removes a member from a room, only if it is still the member the caller
-- means (a reaper of an old lease must not remove the member its node
-- re-registered under a new one).
-- KEYS[1]  the room's member hash
-- ARGV[1]  session id
-- ARGV[2]  the member's expected value "<user>/<device>/<lease>"
-- Returns  1 when the member was removed, else 0
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
