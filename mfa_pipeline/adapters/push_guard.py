"""Push fatigue limits in Redis (its in-memory twin in tests/ passes the same suite).

One user's three keys share a hash tag, so the admission check is one atomic script even on
Redis Cluster: two API processes admitting pushes for the same user at once cannot both take
the last pending slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfa_pipeline.adapters.redis_store import _lua, translate_redis_errors
from mfa_pipeline.domain.push import HOUR_SECONDS, MAX_PENDING_PER_USER, MAX_PER_HOUR
from mfa_pipeline.ports import PushGuard

if TYPE_CHECKING:
    from mfa_pipeline.adapters.redis_store import RedisClient


class RedisPushGuard(PushGuard):
    def __init__(self, client: RedisClient, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._admit = client.register_script(_lua("push_admit"))

    def _keys(self, user_id: str) -> list[str]:
        tag = f"{self._prefix}:{{pu:{user_id}}}"
        return [f"{tag}:pending", f"{tag}:hour", f"{tag}:block"]

    @translate_redis_errors
    def admit(self, user_id: str, challenge_id: str, *, now: float, expires_at: float) -> float:
        args: list[str | float] = [
            now,
            challenge_id,
            expires_at,
            MAX_PENDING_PER_USER,
            MAX_PER_HOUR,
            HOUR_SECONDS,
        ]
        return float(self._admit(keys=self._keys(user_id), args=args))

    @translate_redis_errors
    def release(self, user_id: str, challenge_id: str) -> None:
        self._redis.zrem(self._keys(user_id)[0], challenge_id)

    @translate_redis_errors
    def block(self, user_id: str, *, seconds: float, now: float) -> None:  # noqa: ARG002 - Redis times the block
        self._redis.set(self._keys(user_id)[2], "1", px=max(1, int(seconds * 1000)))
