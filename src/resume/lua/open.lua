-- Opens a new live session held by a node.
-- KEYS[1]  the session's hash   {s:<session>}resume
-- ARGV[1]  user
-- ARGV[2]  node
-- ARGV[3]  state (JSON: rooms and watches)
-- ARGV[4]  device
-- Returns  1, or 0 when the session exists already
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'device', ARGV[4], 'status', 'live', 'node', ARGV[2], 'epoch', 1, 'seq', 0, 'state', ARGV[3])
return 1
