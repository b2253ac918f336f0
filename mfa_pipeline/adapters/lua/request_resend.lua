-- KEYS: challenge, due, deliveries. ARGV: id, now, max_resends, min_interval_s.
-- The old code dies at once; the next claim stores the new one.
local key = KEYS[1]
local now = tonumber(ARGV[2])
local h = redis.call('HMGET', key, 'status', 'exp', 'rs', 'lrs', 'created', 'seq')
local why = blocked(h[1], h[2], now)
if why then return {why, h[1] or '', 0} end
local resends = tonumber(h[3])
if resends >= tonumber(ARGV[3]) then return {'exhausted', 'pending', 0} end
local last = tonumber(h[4]) or tonumber(h[5])
local wait = last + tonumber(ARGV[4]) - now
if wait > 0 then return {'too_soon', 'pending', tostring(wait)} end
local seq = tonumber(h[6]) + 1
redis.call('HSET', key, 'rs', resends + 1, 'lrs', now, 'seq', seq, 'dst', 'queued')
watch_delivery(KEYS[3], ARGV[1], now)
redis.call('HDEL', key, 'chash', 'dsid', 'derr')
return {'done', 'pending', tostring(seq)}
