-- KEYS: challenge, due. ARGV: id, channel, now, retain_ms, check (1 compare / 0 count a miss),
-- candidate hashes... Returns {transition, status, attempts_remaining}.
local key, due = KEYS[1], KEYS[2]
local id, channel, now, retain_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local h = redis.call('HMGET', key, 'status', 'exp', 'att', 'max', 'chash')
local why = blocked(h[1], h[2], now)
if why then return {why, h[1] or '', 0} end
local attempts, max = tonumber(h[3]), tonumber(h[4])
if ARGV[5] == '1' and h[5] and h[5] ~= '' then
  for i = 6, #ARGV do
    if ARGV[i] == h[5] then
      finish(key, due, id, channel, 'verified', now, retain_ms)
      return {'done', 'verified', max - attempts}
    end
  end
end
attempts = attempts + 1
redis.call('HSET', key, 'att', attempts)
if attempts >= max then
  finish(key, due, id, channel, 'locked', now, retain_ms)
  return {'locked', 'locked', 0}
end
return {'mismatch', 'pending', max - attempts}
