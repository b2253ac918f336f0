-- KEYS: challenge, due. ARGV: id, expires_at, ttl_ms, field, value, ...
local key, due = KEYS[1], KEYS[2]
if redis.call('EXISTS', key) == 1 then return 0 end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
if redis.call('HGET', key, 'status') == 'pending' then
  redis.call('ZADD', due, ARGV[2], ARGV[1])
end
redis.call('PEXPIRE', key, ARGV[3])
return 1
