-- Claims expired leases for reaping, judged by Redis's clock. A claim moves
-- the lease from the lease ZSET to the reaping ZSET with a deadline; the
-- reaper removes it from there when it has cleaned up. A reaper that dies
-- mid-way leaves a claim that expires, and the next reaper takes it over.
-- KEYS[1]  the lease ZSET        (lease id -> expiry)
-- KEYS[2]  the reaping ZSET      (lease id -> claim deadline)
-- ARGV[1]  the caller's own lease id (never claimed)
-- ARGV[2]  claim duration (ms)
-- ARGV[3]  at most this many leases
-- Returns  the claimed lease ids
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[3])
local claimed = {}
for _, key in ipairs(KEYS) do
  for _, lease in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, limit)) do
    if lease ~= ARGV[1] and #claimed < limit then
      redis.call('ZREM', key, lease)
      redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), lease)
      claimed[#claimed + 1] = lease
    end
  end
end
return claimed
