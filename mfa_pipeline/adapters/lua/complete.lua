-- KEYS: challenge, due. ARGV: id, channel, now, retain_ms, status.
local key, due = KEYS[1], KEYS[2]
local id, channel, now, retain_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local h = redis.call('HMGET', key, 'status', 'exp', 'att', 'max')
local why = blocked(h[1], h[2], now)
if why then return {why, h[1] or '', 0} end
finish(key, due, id, channel, ARGV[5], now, retain_ms)
return {'done', ARGV[5], tonumber(h[4]) - tonumber(h[3])}
