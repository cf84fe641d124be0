-- Publishes one event-loop turn's batches, one PUBLISH per channel, in one
-- call (redis-bus.ts): one command for ioredis to build, time and settle
-- instead of one per channel.
-- The PUBLISHes run in ARGV order, which is the order subscribers receive
-- them in: redis-bus.ts relies on it to keep a user's channels in order.
-- ARGV     channel, payload, channel, payload, ... (a channel may come again)
-- Returns  each PUBLISH's subscriber count, in order
local counts = {}
for i = 1, #ARGV, 2 do
  counts[#counts + 1] = redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return counts
