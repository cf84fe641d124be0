-- Registers a device connection of a user, atomically deciding whether the
-- user just came online and which connection (if any) it replaces.
-- KEYS[1]  the user's device hash   (device -> "<session>|<node>")
-- ARGV[1]  device id
-- ARGV[2]  holder "<session>|<node>"
-- Returns  { wentOnline (1/0), previous holder or false }
local before = redis.call('HLEN', KEYS[1])
local previous = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if before == 0 then
  return { 1, previous }
end
return { 0, previous }
