-- KEYS: the factor's last accepted step. ARGV: step, ttl_ms.
-- Raises the last accepted TOTP step; a step not above it is a replay (0).
local last = tonumber(redis.call('GET', KEYS[1]))
local step = tonumber(ARGV[1])
if last and step <= last then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
