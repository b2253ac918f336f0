"""A frozen clock that tests move by hand."""

from __future__ import annotations

import threading
import time

from mfa_pipeline.ports import Clock


class FrozenClock(Clock):
    """Stands still until `advance`; lets tests cross expiries and TOTP steps without sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, when: float) -> None:
        with self._lock:
            self._now = when
