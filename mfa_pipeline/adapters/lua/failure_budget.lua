-- KEYS: one user's failure count (a hash: failures, retry_at). ARGV: now, free,
-- max_delay_s, memory_ms. Counts one wrong code and sets when the next may be tried, in one
-- step: racing wrong codes from several processes each count. Mirrors
-- `FailureBudget.delay_after`: 0 s for the first `free`, then doubling from 1 s up to the cap.
-- Returns {failures, retry_at} (retry_at as a string: Lua numbers lose precision in replies).
local now, free, max_delay = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local delay = 0
if failures >= free then delay = math.min(max_delay, 2 ^ math.min(failures - free, 16)) end
local retry_at = tonumber(redis.call('HGET', KEYS[1], 'retry_at') or '0')
if delay > 0 and now + delay > retry_at then
  retry_at = now + delay
  -- Milliseconds, written out: tostring() keeps 14 digits and could round a time upwards.
  redis.call('HSET', KEYS[1], 'retry_at', string.format('%.3f', retry_at))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {failures, string.format('%.3f', retry_at)}
