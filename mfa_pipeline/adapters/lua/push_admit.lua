-- KEYS: pending, hour, block (one user's, one hash tag). ARGV: now, id, expires_at,
-- max_pending, max_per_hour, hour_s. Returns "0" when admitted (and counted), else the
-- seconds until a push would be admitted. Push fatigue: a flood of prompts must not wear a
-- user into approving one.
local pending, hour, block = KEYS[1], KEYS[2], KEYS[3]
local now, id, exp = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local max_pending, max_hour, hour_s = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local blocked_ms = redis.call('PTTL', block)
if blocked_ms > 0 then return tostring(blocked_ms / 1000) end
redis.call('ZREMRANGEBYSCORE', pending, '-inf', now)
if redis.call('ZCARD', pending) >= max_pending then
  local first = redis.call('ZRANGE', pending, 0, 0, 'WITHSCORES')
  return tostring(math.max(0.001, tonumber(first[2]) - now))
end
redis.call('ZREMRANGEBYSCORE', hour, '-inf', now - hour_s)
if redis.call('ZCARD', hour) >= max_hour then
  local oldest = redis.call('ZRANGE', hour, 0, 0, 'WITHSCORES')
  return tostring(math.max(0.001, tonumber(oldest[2]) + hour_s - now))
end
redis.call('ZADD', pending, exp, id)
redis.call('ZADD', hour, now, id)
redis.call('PEXPIRE', pending, math.floor(math.max(1, exp - now) * 1000) + 1000)
redis.call('PEXPIRE', hour, hour_s * 1000)
return '0'
