-- Lists a session in an index (its user's, or a room's): until its window
-- ends (the score is the deadline), or, with '+inf', for as long as a node
-- holds it. The index lives as long as its latest entry: for good while it
-- lists a held session, else until the latest deadline.
-- KEYS[1]  the index (ZSET)
-- ARGV[1]  the deadline (Redis ms), or '+inf'
-- ARGV[2]  the entry
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] == 'inf' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIREAT', KEYS[1], tonumber(top[2]))
end
return 1
