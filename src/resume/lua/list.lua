-- Lists an away session in an index (its user's, or a room's) until its
-- window ends: the score is the deadline, and the index lives as long as its
-- latest entry.
-- KEYS[1]  the index (ZSET)
-- ARGV[1]  the deadline (Redis ms)
-- ARGV[2]  the entry
local deadline = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], deadline, ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ttl < 0 or now + ttl < deadline then
  redis.call('PEXPIREAT', KEYS[1], deadline)
end
return 1
