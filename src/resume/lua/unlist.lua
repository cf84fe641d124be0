-- Takes a session out of an index; an index left with deadlines only expires
-- with the latest of them (list.lua).
-- KEYS[1]  the index (ZSET)
-- ARGV[1]  the entry
redis.call('ZREM', KEYS[1], ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] and top[2] ~= 'inf' then
  redis.call('PEXPIREAT', KEYS[1], tonumber(top[2]))
end
return 1
