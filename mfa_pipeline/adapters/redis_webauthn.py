"""WebAuthn ceremony state in Redis: short-lived keys, read once where single use matters."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from mfa_pipeline.adapters.redis_store import translate_redis_errors
from mfa_pipeline.ports import WebAuthnCeremonyStore

if TYPE_CHECKING:
    from mfa_pipeline.adapters.redis_store import RedisClient


class RedisWebAuthnCeremonyStore(WebAuthnCeremonyStore):
    def __init__(self, client: RedisClient, *, prefix: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}:wa:"

    @translate_redis_errors
    def put(self, key: str, value: str, *, ttl_seconds: float) -> None:
        self._redis.set(self._prefix + key, value, px=max(1, math.ceil(ttl_seconds * 1000)))

    @translate_redis_errors
    def get(self, key: str) -> str | None:
        value = self._redis.get(self._prefix + key)
        return None if value is None else str(value)

    @translate_redis_errors
    def take(self, key: str) -> str | None:
        # GETDEL (Redis 6.2): one command, so two racing requests cannot both read the value.
        value = self._redis.getdel(self._prefix + key)
        return None if value is None else str(value)
