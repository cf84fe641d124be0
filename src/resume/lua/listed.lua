-- The entries of an index whose window is not over (by Redis's clock); the
-- others are dropped on the way.
-- KEYS[1]  the index (ZSET)
-- Returns  the entries
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
