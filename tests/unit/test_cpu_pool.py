"""The backup-code hashing pool: a fixed number of jobs run, a few wait, the rest are refused."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mfa_pipeline.api.cpu_pool import CpuBoundPool
from mfa_pipeline.domain.errors import UnavailableError


def test_jobs_beyond_the_workers_and_the_queue_are_refused_at_once_and_the_loop_stays_free() -> (
    None
):
    pool = CpuBoundPool(workers=1, queue=1)
    release = threading.Event()
    started = threading.Event()
    running: list[str] = []

    def job(name: str) -> str:
        running.append(name)
        started.set()
        release.wait(10)
        return name

    async def scenario() -> tuple[list[str], int]:
        first = asyncio.ensure_future(pool.run(lambda: job("a")))
        second = asyncio.ensure_future(pool.run(lambda: job("b")))
        await asyncio.sleep(0)  # both admitted: one runs, one waits for the worker
        with pytest.raises(UnavailableError) as refused:
            await pool.run(lambda: job("c"))
        assert refused.value.details == {"reason": "busy"}
        # The running job does not block the event loop: other awaits still complete meanwhile.
        assert await asyncio.to_thread(started.wait, 10)
        admitted = pool.admitted
        release.set()
        return [await first, await second], admitted

    try:
        done, admitted = asyncio.run(scenario())
    finally:
        release.set()
        pool.close()
    assert done == ["a", "b"]
    assert admitted == 2
    assert running == ["a", "b"]  # one at a time, "c" never ran
    assert pool.admitted == 0


def test_a_job_error_frees_its_place() -> None:
    pool = CpuBoundPool(workers=1, queue=0)

    def failing() -> None:
        raise ValueError("boom")

    async def scenario() -> str:
        with pytest.raises(ValueError, match="boom"):
            await pool.run(failing)
        return await pool.run(lambda: "next")

    try:
        assert asyncio.run(scenario()) == "next"
    finally:
        pool.close()
