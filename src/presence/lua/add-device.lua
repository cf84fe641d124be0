-- Registers a device connection of a user, atomically deciding whether the
-- user just came online and which connection (if any) it replaces.
-- KEYS[1]  the user's device hash   (device -> "<session>|<lease>")
-- ARGV[1]  device id
-- ARGV[2]  holder "<session>|<lease>"
-- ARGV[3]  "restore" when re-registering a connection Redis lost (a restart, or
--          its node's lease was reaped): it then takes the device only if it is
--          free or still its own; a different session holding it connected
--          later and wins.
-- Returns  { wentOnline (1/0), previous holder or false, lost (1/0) }
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == 'restore' and previous then
  local session = string.match(ARGV[2], '^[^|]*')
  if string.match(previous, '^[^|]*') ~= session then
    return { 0, previous, 1 }
  end
end
local before = redis.call('HLEN', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if before == 0 then
  return { 1, previous, 0 }
end
return { 0, previous, 0 }
