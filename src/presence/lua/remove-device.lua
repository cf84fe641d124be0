-- Removes a device connection only if that connection still holds the device
-- (a replaced connection's goodbye must not remove its successor).
-- KEYS[1]  the user's device hash
-- ARGV[1]  device id
-- ARGV[2]  holder "<session>|<lease>"
-- Returns  1 when the user has no device left (went offline), else 0
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 1
end
return 0
