-- Adds a member to a room and returns every member, the new one included.
-- KEYS[1]  the room's member hash   (session -> "<user>/<device>/<node>")
-- ARGV[1]  session id
-- ARGV[2]  "<user>/<device>/<node>"
-- Returns  the hash values
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HVALS', KEYS[1])
