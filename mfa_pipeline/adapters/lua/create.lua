-- KEYS: challenge, due, deliveries[, idempotency marker]. ARGV: id, expires_at, ttl_ms, marker_ttl_ms,
-- field, value, ...
-- The marker (the challenge id under the request's idempotency key) is written in the same
-- step as the challenge: a request whose answer is lost after this finds what it created.
local key, due = KEYS[1], KEYS[2]
if redis.call('EXISTS', key) == 1 then return 0 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
local h = redis.call('HMGET', key, 'status', 'dst', 'created')
if h[1] == 'pending' then
  redis.call('ZADD', due, ARGV[2], ARGV[1])
  if h[2] == 'queued' then watch_delivery(KEYS[3], ARGV[1], h[3]) end
end
redis.call('PEXPIRE', key, ARGV[3])
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[4]) end
return 1
