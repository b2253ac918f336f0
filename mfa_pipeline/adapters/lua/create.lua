-- KEYS: challenge, due, deliveries[, idempotency marker][, TOTP step]. ARGV: id, expires_at,
-- ttl_ms, marker_ttl_ms (0: no marker), step ('': no claim), step keep_ms, field, value, ...
-- The marker (the challenge id under the request's idempotency key) is written in the same
-- step as the challenge: a request whose answer is lost after this finds what it created.
-- A one-shot TOTP login claims its code's step here too: a replayed code stores nothing (-1).
local key, due = KEYS[1], KEYS[2]
if redis.call('EXISTS', key) == 1 then return 0 end
if ARGV[5] ~= '' and not claim_step(KEYS[#KEYS], ARGV[5], ARGV[6]) then return -1 end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
local h = redis.call('HMGET', key, 'status', 'dst', 'created')
if h[1] == 'pending' then
  redis.call('ZADD', due, ARGV[2], ARGV[1])
  if h[2] == 'queued' then watch_delivery(KEYS[3], ARGV[1], h[3]) end
end
redis.call('PEXPIRE', key, ARGV[3])
if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[4]) end
return 1
