-- KEYS: counters, then optionally one hash to read. ARGV: the number of counters, limit and
-- window_ms for each counter in turn, then the hash's fields to read. rate_limit.lua on every
-- counter in one call (each counts, even past one that is over); returns ms until allowed per
-- counter, then the fields' values (nil where absent). A login counts its windows and reads
-- its user's failure count (`failure_budget.lua`'s hash) in this one round trip.
local counters = tonumber(ARGV[1])
local reply = {}
for i = 1, counters do
  local key = KEYS[i]
  local limit, window = tonumber(ARGV[2 * i]), ARGV[2 * i + 1]
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, window) end
  local wait = 0
  if count > limit then
    wait = redis.call('PTTL', key)
    if wait < 0 then redis.call('PEXPIRE', key, window); wait = tonumber(window) end
  end
  reply[i] = wait
end
for j = 2 * counters + 2, #ARGV do
  reply[#reply + 1] = redis.call('HGET', KEYS[counters + 1], ARGV[j])
end
return reply
