-- Shared by every challenge script (prepended when the script is loaded).
-- A challenge is a hash; `due` is the shard's sorted set of pending challenges by expiry.
-- Every script reads, decides and writes in one step, so racing processes cannot verify a
-- challenge twice, exceed its attempt limit or revive an expired one.

local FINAL_TRANSITION = {
  verified = 'completed', approved = 'completed', denied = 'completed',
  failed = 'completed', expired = 'expired', locked = 'locked',
}

-- Raise a TOTP factor's last accepted step to `step`, kept `keep_ms`; false when the step is
-- not above it (a code used already: RFC 6238 §5.2).
local function claim_step(key, step, keep_ms)
  local last = tonumber(redis.call('GET', key))
  if last and tonumber(step) <= last then return false end
  redis.call('SET', key, step, 'PX', keep_ms)
  return true
end

local function notify(channel, status)
  redis.call('PUBLISH', channel, status)
end

-- Close a pending challenge: final status, out of the expiry index, kept for `retain_ms`.
local function finish(key, due, id, channel, status, now, retain_ms)
  redis.call('HSET', key, 'status', status, 'done', now)
  redis.call('ZREM', due, id)
  redis.call('PEXPIRE', key, retain_ms)
  notify(channel, status)
end

-- Why a challenge cannot change now, or nil when it is pending and unexpired.
local function blocked(status, exp, now)
  if not status then return 'not_found' end
  if status ~= 'pending' then return FINAL_TRANSITION[status] or 'completed' end
  if now >= tonumber(exp) then return 'expired' end
  return nil
end

-- `deliveries` is the shard's sorted set of SMS and push sends not yet done, scored by their
-- last change: the redelivery sweep re-publishes those that stopped moving (a dead worker).
local function watch_delivery(deliveries, id, since)
  redis.call('ZADD', deliveries, since, id)
end
