-- Records a session's state, or sends it away, if the caller still holds it.
-- The window is judged by Redis's clock: the keys expire with it, and the
-- deadline kept in the hash is checked against TIME by append and resume.
-- KEYS[1]  the session's hash
-- KEYS[2]  the session's buffer (LIST of "<seq>:<data>")
-- ARGV[1]  'save' | 'away'
-- ARGV[2]  'epoch' | 'node': what fences the call
-- ARGV[3]  the claim's epoch, or the node that must hold it (a reaper's release)
-- ARGV[4]  state (JSON), or '' to keep the saved one
-- ARGV[5]  the window (ms), for 'away'
-- Returns  0 when the caller does not hold the session; else 1 for 'save', and
--          for 'away' { deadline, user, device, old state, new state } (deadline
--          0: the session ended at once), for the caller to list the session
--          under its user and rooms, and unlist it from the old state's rooms.
local held = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'node', 'user', 'device', 'state')
if not held[1] or held[1] == 'away' then
  return 0
end
if (ARGV[2] == 'epoch' and held[2] ~= ARGV[3]) or (ARGV[2] == 'node' and held[3] ~= ARGV[3]) then
  return 0
end
local state = held[6]
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'state', ARGV[4])
  state = ARGV[4]
end
if ARGV[1] == 'away' then
  local window = tonumber(ARGV[5])
  if window <= 0 then
    redis.call('DEL', KEYS[1], KEYS[2])
    return { 0, held[4], held[5], held[6], state }
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- Sent away mid-resume: what the resume handed over stays, for the next one.
  redis.call('HSET', KEYS[1], 'status', 'away', 'node', '', 'deadline', now + window)
  if ARGV[2] == 'node' then
    -- A reaper's release: the node may be alive after all and reclaim it (reclaim.lua) as it was.
    redis.call('HSET', KEYS[1], 'released', ARGV[3], 'was', held[1])
  else
    redis.call('HDEL', KEYS[1], 'taken')
  end
  redis.call('PEXPIREAT', KEYS[1], now + window)
  redis.call('PEXPIREAT', KEYS[2], now + window)
  return { now + window, held[4], held[5], held[6], state }
end
return 1
