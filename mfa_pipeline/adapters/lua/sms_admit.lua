-- KEYS: number, prefix, country, global, open (one hash tag: one slot, one atomic step).
-- ARGV: now_ms, ticket, then limit and window_ms for number, prefix, country and global,
-- then cooldown_ms. Sliding logs: each key is a sorted set of admitted sends by time, so a
-- window never lets twice its limit through across a boundary as a fixed window would.
-- Returns {outcome, wait_ms, opened}: outcome 'ok' (counted everywhere), 'number', 'prefix',
-- 'country' or 'circuit' (nothing counted); opened is 1 only for the call that opened it.
local now, ticket = tonumber(ARGV[1]), ARGV[2]

local function wait_for(key, limit, window_ms)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_ms)
  if redis.call('ZCARD', key) < limit then return 0 end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window_ms - now)
end

-- The breaker holds the time it reopens at (the caller's clock); its TTL only cleans it up.
local open_until = tonumber(redis.call('GET', KEYS[5]) or '0')
if open_until > now then return {'circuit', open_until - now, 0} end

local scopes = {'number', 'prefix', 'country'}
for i = 1, 3 do
  local wait = wait_for(KEYS[i], tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i]))
  if wait > 0 then return {scopes[i], wait, 0} end
end
if wait_for(KEYS[4], tonumber(ARGV[9]), tonumber(ARGV[10])) > 0 then
  -- Only one call can get here per opening (scripts run one at a time): it raises the alert.
  local cooldown = tonumber(ARGV[11])
  redis.call('SET', KEYS[5], now + cooldown, 'PX', cooldown)
  return {'circuit', cooldown, 1}
end
for i = 1, 4 do
  redis.call('ZADD', KEYS[i], now, ticket)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 + 2 * i]))
end
return {'ok', 0, 0}
