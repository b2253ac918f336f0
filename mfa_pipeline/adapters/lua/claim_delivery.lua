-- KEYS: challenge, due, deliveries. ARGV: id, seq, code_hash, now, ttl_s, retain_ms, in_flight_s.
-- A send of `seq` may start once: a second run of the same task finds it `sent` (duplicate)
-- or `sending`: still `in_flight` if it began less than `in_flight_s` ago (another copy of the
-- task is with the provider now), else `interrupted` (its worker died: the provider may have it).
local key, due = KEYS[1], KEYS[2]
local id, seq, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local h = redis.call('HMGET', key, 'status', 'exp', 'seq', 'cseq', 'dst', 'datt', 'dupd')
local why = blocked(h[1], h[2], now)
if why then return {why, h[1] or '', 0} end
if seq < tonumber(h[3]) then return {'stale', 'pending', 0} end
if tonumber(h[4]) == seq then
  if h[5] == 'sending' then
    local age = now - (tonumber(h[7]) or 0)
    local in_flight = tonumber(ARGV[7]) or 0
    if age < in_flight then return {'in_flight', 'pending', 0} end
    return {'interrupted', 'pending', 0}
  end
  if h[5] ~= 'retrying' then return {'duplicate', 'pending', 0} end
end
local exp = now + tonumber(ARGV[5])
redis.call('HSET', key, 'chash', ARGV[3], 'cseq', seq, 'dst', 'sending',
  'datt', tonumber(h[6]) + 1, 'exp', exp, 'dupd', now)
redis.call('ZADD', due, exp, id)
watch_delivery(KEYS[3], id, now)
redis.call('PEXPIRE', key, math.floor(tonumber(ARGV[5]) * 1000) + tonumber(ARGV[6]))
return {'done', 'pending', 0}
