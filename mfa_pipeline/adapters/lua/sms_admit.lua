-- KEYS (one hash tag: one slot, one atomic step): the number, prefix and country windows, then
-- the window and "open until" key of the scoped breaker (this application to this country) and
-- of the global breaker.
-- ARGV: now_ms, ticket, then limit and window_ms for number, prefix and country, then the
-- scoped and the global breaker limits, the breakers' window_ms and cooldown_ms.
-- Sliding logs: each window is a sorted set of admitted sends by time, so a window never lets
-- twice its limit through across a boundary as a fixed window would.
-- Returns {outcome, wait_ms, opened}: outcome 'ok' (counted everywhere), 'number', 'prefix',
-- 'country', 'circuit_scoped' or 'circuit_global' (nothing counted); opened is 1 only for the
-- call that opened that breaker.
local now, ticket = tonumber(ARGV[1]), ARGV[2]
local breaker_window, cooldown = tonumber(ARGV[11]), tonumber(ARGV[12])

local function wait_for(key, limit, window_ms)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_ms)
  if redis.call('ZCARD', key) < limit then return 0 end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window_ms - now)
end

-- The scoped breaker first: a surge through one application to one country pauses just that;
-- the global one (its own, higher limit) is the last resort for a surge spread wide.
local breakers = {
  {name = 'circuit_scoped', window = KEYS[4], open = KEYS[5], limit = tonumber(ARGV[9])},
  {name = 'circuit_global', window = KEYS[6], open = KEYS[7], limit = tonumber(ARGV[10])},
}

-- An open breaker holds the time it reopens at (the caller's clock); its TTL only cleans up.
for i = 2, 1, -1 do
  local open_until = tonumber(redis.call('GET', breakers[i].open) or '0')
  if open_until > now then return {breakers[i].name, open_until - now, 0} end
end

local scopes = {'number', 'prefix', 'country'}
for i = 1, 3 do
  local wait = wait_for(KEYS[i], tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i]))
  if wait > 0 then return {scopes[i], wait, 0} end
end
for _, breaker in ipairs(breakers) do
  if wait_for(breaker.window, breaker.limit, breaker_window) > 0 then
    -- Only one call can get here per opening (scripts run one at a time): it raises the alert.
    redis.call('SET', breaker.open, now + cooldown, 'PX', cooldown)
    return {breaker.name, cooldown, 1}
  end
end
for i = 1, 3 do
  redis.call('ZADD', KEYS[i], now, ticket)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 + 2 * i]))
end
for _, breaker in ipairs(breakers) do
  redis.call('ZADD', breaker.window, now, ticket)
  redis.call('PEXPIRE', breaker.window, breaker_window)
end
return {'ok', 0, 0}
