-- Takes back a session its node still serves after the node's hold lapsed
-- (resume-store.ts, Reclaim), fenced by the claim's epoch.
-- KEYS[1]  the session's hash
-- KEYS[2]  the session's buffer
-- ARGV[1]  the claim's epoch
-- ARGV[2]  the node's holder now (its new lease id)
-- ARGV[3]  user     } to open the session again
-- ARGV[4]  device   } if Redis lost it
-- ARGV[5]  'live' | 'resuming': where the claim stands
-- Returns  { 'held', messages, state }      still the claim's (its holder renamed)
--          { 'released', messages, state }  taken back from a reaper's release: the caller lists
--                                           it as held again and unlists it from the state's rooms
--          { 'opened' }                     lost by Redis, opened again
--          { 'lost' }                       another claim superseded it, or its node sent it away
-- The messages are what was kept for a live session meanwhile (for its node to deliver); a session
-- mid-resume keeps its buffer for `back`.
local s = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'released', 'was', 'state')
if not s[1] then
  redis.call('HSET', KEYS[1], 'user', ARGV[3], 'device', ARGV[4], 'status', ARGV[5], 'node', ARGV[2],
    'epoch', ARGV[1], 'seq', 0, 'state', '{"rooms":[],"watches":[]}')
  return { 'opened' }
end
if s[2] ~= ARGV[1] or (s[1] == 'away' and not s[3]) then
  return { 'lost' }
end
local status = s[1]
local outcome = 'held'
if status == 'away' then
  status = s[4]
  outcome = 'released'
  redis.call('HDEL', KEYS[1], 'deadline', 'released', 'was')
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
redis.call('HSET', KEYS[1], 'status', status, 'node', ARGV[2])
local messages = {}
if status == 'live' then
  messages = redis.call('LRANGE', KEYS[2], 0, -1)
  redis.call('DEL', KEYS[2])
  -- Everything kept reaches the open connection; senders turned away meanwhile heard 'overflow'.
  redis.call('HDEL', KEYS[1], 'overflow')
end
return { outcome, messages, s[5] }
