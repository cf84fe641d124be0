-- Adds a member to a room and returns every member, the new one included.
-- KEYS[1]  the room's member hash   (session -> "<user>/<device>/<lease>")
-- ARGV[1]  session id
-- ARGV[2]  "<user>/<device>/<lease>"
-- Returns  { added (1: the session was not a member), the hash values }
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return { added, redis.call('HVALS', KEYS[1]) }
