-- KEYS: challenge, due, deliveries. ARGV: id, channel, now, retain_ms, seq, delivery status,
-- provider id, error code, fail challenge (1/0).
local key, due = KEYS[1], KEYS[2]
local id, channel, now, retain_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
-- Stale unless `seq` is the current send sequence: a resend supersedes the older outcome
-- even before its own claim, and a failure found before any claim still counts.
local h = redis.call('HMGET', key, 'status', 'seq', 'dst', 'dsid')
if not h[1] then return {'not_found', '', 0} end
if tonumber(h[2]) ~= tonumber(ARGV[5]) then return {'stale', h[1], 0} end
-- The provider's report on this very message overtook this record (`record_provider_status`):
-- it is further along than `sent`, so it stays.
local dst = ARGV[6]
local reported = {delivered = true, undelivered = true, failed = true}
if dst == 'sent' and ARGV[7] ~= '' and h[4] == ARGV[7] and reported[h[3]] then dst = h[3] end
redis.call('HSET', key, 'dst', dst, 'dupd', now)
if ARGV[7] ~= '' then redis.call('HSET', key, 'dsid', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', key, 'derr', ARGV[8]) end
if ARGV[6] == 'sent' then redis.call('HSET', key, 'dsent', now) end
if ARGV[6] == 'failed' or ARGV[6] == 'retrying' then redis.call('HDEL', key, 'chash') end
if ARGV[6] == 'retrying' then
  watch_delivery(KEYS[3], id, now)
else
  redis.call('ZREM', KEYS[3], id)
end
if ARGV[9] == '1' and h[1] == 'pending' then
  finish(key, due, id, channel, 'failed', now, retain_ms)
  return {'done', 'failed', 0}
end
return {'done', h[1], 0}
