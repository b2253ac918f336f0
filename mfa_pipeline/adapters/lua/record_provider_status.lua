-- KEYS: challenge, due. ARGV: id, channel, now, seq, provider id, delivery status, error code.
-- A provider's delivery report (Twilio's status callback) for send sequence `seq`. Reports come
-- late, twice and out of order, so one is applied only when it is about the message this
-- challenge last sent and is further along than what is stored:
--   * another send sequence (a resend superseded it): stale;
--   * another message than the recorded one (an attempt given up on a timeout): stale;
--   * no message recorded yet: adopted only while this sequence's send is under way (the
--     report overtook the worker's own record; `record_delivery` then keeps it);
--   * not further along (`sent` after `delivered`, a repeat): a duplicate, nothing changes.
-- The challenge's status never changes here: an `undelivered` report leaves it pending, so
-- the user can still ask for a resend, and a late `delivered` can still be typed in.
local RANK = {queued = 0, sending = 0, retrying = 0, sent = 1,
  delivered = 2, undelivered = 2, failed = 2}
local key = KEYS[1]
local now, seq = ARGV[3], tonumber(ARGV[4])  -- ARGV[2], the channel: a report changes no status
local sid, dst, err = ARGV[5], ARGV[6], ARGV[7]
local h = redis.call('HMGET', key, 'status', 'seq', 'dsid', 'dst', 'cseq')
if not h[1] then return {'not_found', '', 0} end
if tonumber(h[2]) ~= seq then return {'stale', h[1], 0} end
if h[3] and h[3] ~= '' then
  if h[3] ~= sid then return {'stale', h[1], 0} end
elseif h[4] ~= 'sending' or tonumber(h[5]) ~= seq then
  return {'stale', h[1], 0}
end
if (RANK[dst] or 0) <= (RANK[h[4]] or 0) then return {'duplicate', h[1], 0} end
redis.call('HSET', key, 'dst', dst, 'dsid', sid, 'dupd', now)
if err ~= '' then redis.call('HSET', key, 'derr', err) end
return {'done', h[1], 0}
