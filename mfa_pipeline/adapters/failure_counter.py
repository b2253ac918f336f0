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
from mfa_pipeline.ports import FailureCounter

if TYPE_CHECKING:
    from mfa_pipeline.adapters.redis_store import RedisClient
    from mfa_pipeline.domain.failure_budget import FailureBudget


class RedisFailureCounter(FailureCounter):
    def __init__(self, client: RedisClient, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._record = client.register_script(_lua("failure_budget"))

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}:{{fb:{user_id}}}:failures"

    @translate_redis_errors
    def record_failure(self, user_id: str, budget: FailureBudget, *, now: float) -> FailureCount:
        args: list[float | int] = [
            now,
            budget.free,
            budget.max_delay_seconds,
            budget.memory_seconds * 1000,
        ]
        failures, retry_at = self._record(keys=[self._key(user_id)], args=args)
        return FailureCount(int(failures), float(retry_at))

    @translate_redis_errors
    def retry_at(self, user_id: str) -> float:
        value = self._redis.hget(self._key(user_id), "retry_at")
        return float(value) if value else 0.0

    @translate_redis_errors
    def reset(self, user_id: str) -> None:
        self._redis.delete(self._key(user_id))
