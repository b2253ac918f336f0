-- KEYS: deliveries, challenge keys... ARGV: now, stale_s, retry_grace_s, ids...
-- Of the given watched sends (each unchanged for `stale_s`), returns those still waiting on a
-- pending challenge (queued, sending, or retrying for `retry_grace_s` more): {id, user,
-- factor, seq} each, to publish again. Each goes back in the set scored `now`, so it is
-- published at most once per `stale_s`; the rest leave the set.
local deliveries, now = KEYS[1], tonumber(ARGV[1])
local stale, grace = tonumber(ARGV[2]), tonumber(ARGV[3])
local waiting = {queued = true, sending = true, retrying = true}
local found = {}
for i = 2, #KEYS do
  local key, id = KEYS[i], ARGV[i + 2]
  local h = redis.call('HMGET', key, 'status', 'exp', 'dst', 'dupd', 'created', 'lrs', 'uid',
    'factor', 'seq')
  if h[1] ~= 'pending' or now >= tonumber(h[2]) or not waiting[h[3]] then
    redis.call('ZREM', deliveries, id)
  else
    local since = math.max(tonumber(h[4]) or tonumber(h[5]), tonumber(h[6]) or 0)
    if h[3] == 'retrying' then since = since + grace end
    if now - since >= stale then
      redis.call('ZADD', deliveries, now, id)
      found[#found + 1] = {id, h[7], h[8], h[9]}
    else
      redis.call('ZADD', deliveries, since, id)
    end
  end
end
return found
