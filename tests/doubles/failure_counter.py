"""The failure counter's twin (`RedisFailureCounter` is the real one): the same arithmetic."""

from __future__ import annotations

import threading

from mfa_pipeline.domain.failure_budget import FailureBudget, FailureCount
from mfa_pipeline.ports import FailureCounter


class InMemoryFailureCounter(FailureCounter):
    """The twin: the same arithmetic on a dict under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, FailureCount] = {}

    def record_failure(self, user_id: str, budget: FailureBudget, *, now: float) -> FailureCount:
        with self._lock:
            previous = self._counts.get(user_id, FailureCount(0, 0.0))
            failures = previous.failures + 1
            delay = budget.delay_after(failures)
            retry_at = max(previous.retry_at, now + delay) if delay else previous.retry_at
            self._counts[user_id] = FailureCount(failures, retry_at)
            return self._counts[user_id]

    def state(self, user_id: str) -> FailureCount:
        with self._lock:
            return self._counts.get(user_id, FailureCount(0, 0.0))

    def reset(self, user_id: str) -> None:
        with self._lock:
            self._counts.pop(user_id, None)
