-- Removes a sidecar's route only if it still hangs on the lease the caller
-- means: the reaper of an old lease (or a removal fenced by it) must not
-- remove the route its node wrote again under a new one.
-- KEYS[1]  the path's route hash   (sidecar -> lease id)
-- ARGV[1]  sidecar id
-- ARGV[2]  the lease id the route is expected to hang on
-- Returns  1 when the route was removed, else 0
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
