-- KEYS: challenge, due. ARGV: id, channel, now, retain_ms, approve (1/0), number, fraud (1/0).
-- The device's answer, once: a replayed or late answer finds the challenge completed or
-- expired and changes nothing. A wrong number denies (the user approved something else).
local key, due = KEYS[1], KEYS[2]
local id, channel, now, retain_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local h = redis.call('HMGET', key, 'status', 'exp', 'factor', 'nm')
local why = blocked(h[1], h[2], now)
if why then return {why, h[1] or '', 0} end
if h[3] ~= 'push' then return {'mismatch', h[1], 0} end
local status = 'denied'
if ARGV[5] == '1' and ARGV[6] == h[4] then status = 'approved' end
if ARGV[7] == '1' then redis.call('HSET', key, 'fraud', 1) end
finish(key, due, id, channel, status, now, retain_ms)
return {'done', status, 0}
