-- Which of the given leases are live, judged by Redis's clock: a lease that
-- expired, is being reaped or went with a Redis restart is not, whatever its
-- node's own clock says. Readers (the tunnel registry's routes) use it to skip
-- entries of a dead node before a reaper has removed them.
-- KEYS[1]  the lease ZSET   (lease id -> expiry, Redis ms)
-- ARGV     lease ids
-- Returns  for each lease id, 1 when it is live, else 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = {}
for i, lease in ipairs(ARGV) do
  local expiry = redis.call('ZSCORE', KEYS[1], lease)
  if expiry and tonumber(expiry) >= now then
    live[i] = 1
  else
    live[i] = 0
  end
end
return live
