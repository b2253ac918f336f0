"""The push guard's in-memory twin (kept honest by tests/integration/test_push_store.py)."""

from __future__ import annotations

import threading

from mfa_pipeline.domain.push import HOUR_SECONDS, MAX_PENDING_PER_USER, MAX_PER_HOUR
from mfa_pipeline.ports import PushGuard


class InMemoryPushGuard(PushGuard):
    """The twin: same rules on dicts under one lock; its clock is the `now` it is given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, float]] = {}
        self._hour: dict[str, dict[str, float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._now = 0.0

    def admit(self, user_id: str, challenge_id: str, *, now: float, expires_at: float) -> float:
        with self._lock:
            self._now = max(self._now, now)
            until = self._blocked_until.get(user_id, 0.0)
            if until > now:
                return until - now
            pending = {i: e for i, e in self._pending.get(user_id, {}).items() if e > now}
            if len(pending) >= MAX_PENDING_PER_USER:
                return max(0.001, min(pending.values()) - now)
            hour = {i: t for i, t in self._hour.get(user_id, {}).items() if t > now - HOUR_SECONDS}
            if len(hour) >= MAX_PER_HOUR:
                return max(0.001, min(hour.values()) + HOUR_SECONDS - now)
            pending[challenge_id] = expires_at
            hour[challenge_id] = now
            self._pending[user_id], self._hour[user_id] = pending, hour
            return 0.0

    def release(self, user_id: str, challenge_id: str) -> None:
        with self._lock:
            self._pending.get(user_id, {}).pop(challenge_id, None)

    def block(self, user_id: str, *, seconds: float, now: float) -> None:
        with self._lock:
            self._now = max(self._now, now)
            self._blocked_until[user_id] = now + seconds
