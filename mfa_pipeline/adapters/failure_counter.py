"""The failure budget's counts in Redis (`RedisFailureCounter`).

A count lives in Redis rather than SQL: every wrong code writes it, on the login's hot path,
and one Lua script makes the increment and the next allowed time one atomic step across API
processes. The lock it leads to is durable (SQL, on the user row); a Redis that loses the
count gives an attacker at most one more budget, never an open lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfa_pipeline.adapters.redis_store import _lua, translate_redis_errors
from mfa_pipeline.domain.failure_budget import FailureCount
from mfa_pipeline.ports import FailureCounter, LoginCounters

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mfa_pipeline.adapters.redis_store import RedisClient, RedisRateLimiter
    from mfa_pipeline.domain.failure_budget import FailureBudget
    from mfa_pipeline.domain.limits import RateLimit


def _count(values: Sequence[object]) -> FailureCount:
    failures, retry_at = values
    return FailureCount(int(failures or 0), float(retry_at or 0.0))  # type: ignore[call-overload,arg-type]


class RedisFailureCounter(FailureCounter):
    def __init__(self, client: RedisClient, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._record = client.register_script(_lua("failure_budget"))

    def key(self, user_id: str) -> str:
        return f"{self._prefix}:{{fb:{user_id}}}:failures"

    @translate_redis_errors
    def record_failure(self, user_id: str, budget: FailureBudget, *, now: float) -> FailureCount:
        args: list[float | int] = [
            now,
            budget.free,
            budget.max_delay_seconds,
            budget.memory_seconds * 1000,
        ]
        failures, retry_at = self._record(keys=[self.key(user_id)], args=args)
        return FailureCount(int(failures), float(retry_at))

    @translate_redis_errors
    def state(self, user_id: str) -> FailureCount:
        return _count(self._redis.hmget(self.key(user_id), ["failures", "retry_at"]))

    @translate_redis_errors
    def reset(self, user_id: str) -> None:
        self._redis.delete(self.key(user_id))


class RedisLoginCounters(LoginCounters):
    """The rate windows and the failure count in one script call (`rate_limit_many.lua`).

    On a cluster the keys live in different slots: the two are asked one after the other.
    """

    def __init__(self, limiter: RedisRateLimiter, failures: RedisFailureCounter) -> None:
        self._limiter = limiter
        self._failures = failures

    @translate_redis_errors
    def hit_and_read(
        self, hits: Sequence[tuple[str, RateLimit]], *, user_id: str, now: float
    ) -> tuple[list[float], FailureCount]:
        together = self._limiter.hit_many_reading(
            hits, now=now, hash_key=self._failures.key(user_id), fields=("failures", "retry_at")
        )
        if together is None:
            return self._limiter.hit_many(hits, now=now), self._failures.state(user_id)
        waits, values = together
        return waits, _count(values)
