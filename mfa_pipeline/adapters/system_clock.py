"""The system's clock: the production `Clock`."""

from __future__ import annotations

import time

from mfa_pipeline.ports import Clock


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()
