-- KEYS: due, challenge keys... ARGV: now, retain_ms, channel prefix, ids...
-- Expires the given due challenges that are still pending and past expiry; drops index
-- entries whose challenge is gone or already final. Safe when several sweepers overlap.
local due, now, retain_ms, chan = KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3]
local expired = {}
for i = 2, #KEYS do
  local key, id = KEYS[i], ARGV[i + 2]
  local h = redis.call('HMGET', key, 'status', 'exp', 'uid', 'factor', 'app', 'kapp')
  if h[1] == 'pending' then
    if now >= tonumber(h[2]) then
      finish(key, due, id, chan .. id, 'expired', now, retain_ms)
      expired[#expired + 1] = {id, h[3], h[4], h[5] or '', h[6] or ''}
    end
  else
    redis.call('ZREM', due, id)
  end
end
return expired
