-- KEYS: counters. ARGV: limit, window_ms for each key in turn. rate_limit.lua on every key in
-- one call (each counts, even past a key that is over); returns ms until allowed per key.
local waits = {}
for i, key in ipairs(KEYS) do
  local limit, window = tonumber(ARGV[2 * i - 1]), ARGV[2 * i]
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, window) end
  local wait = 0
  if count > limit then
    wait = redis.call('PTTL', key)
    if wait < 0 then redis.call('PEXPIRE', key, window); wait = tonumber(window) end
  end
  waits[i] = wait
end
return waits
