"""CPU-heavy request work (argon2 hashing of new backup codes) on a small pool of its own.

A sync route runs on the shared thread pool that every sync route uses: concurrent backup-code
generations filled it and every core, so health checks and logins waited behind them. Here that
work gets a fixed number of threads and a bounded queue; a request past the queue is refused at
once (503 `unavailable`, Retry-After) rather than piling up.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from mfa_pipeline.domain.errors import UnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


class CpuBoundPool:
    """At most `workers` jobs run and `queue` wait; the count is kept on the event loop thread."""

    def __init__(self, *, workers: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cpu-bound")
        self._capacity = workers + queue
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        return self._admitted

    async def run(self, job: Callable[[], T]) -> T:
        if self._admitted >= self._capacity:
            raise UnavailableError(
                "The service is busy generating codes; try again in a moment.", reason="busy"
            )
        self._admitted += 1
        try:
            context = contextvars.copy_context()  # the request id reaches the job's log lines
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, context.run, job
            )
        finally:
            self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
