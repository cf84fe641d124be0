-- Renews (or creates) a node's lease, judged by Redis's clock: no node's own
-- clock decides whether a lease has expired, so a node whose clock is wrong
-- is neither reaped over and over nor kept alive by it.
-- KEYS[1]  the lease ZSET   (lease id -> expiry, Redis ms)
-- KEYS[2]  the reaping ZSET (lease id -> claim deadline)
-- ARGV[1]  lease id "<node>#<epoch>"
-- ARGV[2]  lease duration (ms)
-- ARGV[3]  "create" for a new lease id
-- ARGV[4]  with "create": the node's previous lease id, or "": it is handed to
--          the reapers at once (claimable now), so whatever was written under
--          it and not registered again under the new one is cleaned up
-- Returns  1 when the lease is held, 0 when it was lost (expired, being reaped,
--          or gone with a Redis restart): the node must take a new lease id and
--          register its connections again under it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == 'create' then
  if ARGV[4] ~= '' and ARGV[4] ~= ARGV[1] then
    redis.call('ZREM', KEYS[1], ARGV[4])
    redis.call('ZADD', KEYS[2], 0, ARGV[4])
  end
else
  local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not expiry or tonumber(expiry) < now then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
