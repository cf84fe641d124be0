-- Removes a member from a room.
-- KEYS[1]  the room's member hash
-- ARGV[1]  session id
-- Returns  the member's "<user>/<device>/<node>", or false when it was not there
local member = redis.call('HGET', KEYS[1], ARGV[1])
if member then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return member
