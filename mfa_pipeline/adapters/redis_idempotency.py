"""Idempotency keys in Redis: a reservation that becomes the first answer, kept for a day.

A key's record lives in a slot of its own (`{idem:<digest>}`), found from the key alone, so a
repeat with another body still finds it. The marker naming the challenge a request created
lives beside that challenge and is written by `create.lua` (see `RedisChallengeStore.create`).
"""

from __future__ import annotations

import json

from mfa_pipeline.adapters.redis_store import RedisClient, RedisKeys, translate_redis_errors
from mfa_pipeline.ports import IdempotencyRecord, IdempotencyStore

# Drop a reservation only while it is still unanswered and still this request's.
_RELEASE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local record = cjson.decode(raw)
if record.fp == ARGV[1] and record.r == cjson.null then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisIdempotencyStore(IdempotencyStore):
    def __init__(self, client: RedisClient, *, prefix: str, shards: int) -> None:
        self._redis = client
        self._keys = RedisKeys(prefix, shards)
        self._release = client.register_script(_RELEASE)

    @translate_redis_errors
    def begin(
        self, digest: str, fingerprint: str, *, lease_seconds: int
    ) -> IdempotencyRecord | None:
        key = self._keys.idempotency(digest)
        reservation = json.dumps({"fp": fingerprint, "r": None})
        for _ in range(2):  # the holder's record may expire between the two commands
            if self._redis.set(key, reservation, nx=True, ex=lease_seconds):
                return None
            raw = self._redis.get(key)
            if raw is not None:
                record = json.loads(raw)
                return IdempotencyRecord(fingerprint=record["fp"], response=record["r"])
        return IdempotencyRecord(fingerprint=fingerprint, response=None)

    @translate_redis_errors
    def finish(self, digest: str, fingerprint: str, response: str, *, ttl_seconds: int) -> None:
        record = json.dumps({"fp": fingerprint, "r": response})
        self._redis.set(self._keys.idempotency(digest), record, ex=ttl_seconds)

    @translate_redis_errors
    def release(self, digest: str, fingerprint: str) -> None:
        self._release(keys=[self._keys.idempotency(digest)], args=[fingerprint])

    @translate_redis_errors
    def created(self, digest: str, *, user_id: str) -> str | None:
        raw = self._redis.get(self._keys.idempotency_marker_of_user(user_id, digest))
        return None if raw is None else str(raw)
