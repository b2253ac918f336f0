"""Scaling drill: SMS workers are added and removed while a stream of challenges runs.

Real `mfa-pipeline worker --queues sms --concurrency 2` processes: two are added during the
stream, and two are stopped with SIGTERM (Celery's warm shutdown: running tasks finish and are
acknowledged, prefetched ones go back to the queue). Each send waits 50 ms at the fake Twilio so
a stop always finds work in hand. Afterwards the fake Twilio shows exactly one SMS per number
(one number per user, one challenge per user): none lost, none duplicated, none failed.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from tests.drills.kit import (
    assert_each_got_one_sms_or_failed,
    drill_settings,
    issue_sms_challenge,
    sms_drill,
    wait_until_settled,
)
from tests.fixtures.pipeline import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.cli.embedded_redis import EmbeddedRedis
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.worker_processes import WorkerProcess

pytestmark = pytest.mark.drill

USERS = 300  # thirty seconds of stream at RATE_PER_SECOND: it outlasts the scaling steps,
# even where a worker process takes several seconds to start (a busy machine)
RATE_PER_SECOND = 10


class ChallengeStream:
    """Issues one SMS challenge per user at a steady rate, on a thread of its own, until stopped."""

    def __init__(self, container: Container, users: list[str]) -> None:
        self.container = container
        self.users = users
        self.issued: dict[str, str] = {}
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="challenge-stream")

    def _run(self) -> None:
        try:
            for user in self.users:
                if self._stop.wait(1 / RATE_PER_SECOND):
                    return
                self.issued[issue_sms_challenge(self.container, user)] = user
        except BaseException as exc:  # reported by the test's own thread
            self.errors.append(exc)

    def start(self) -> None:
        self._thread.start()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self.errors, self.errors


@pytest.mark.timeout(180)  # a warm stop may take about 31 s (see `WorkerProcess.warm_shutdown`)
def test_adding_and_warmly_stopping_workers_under_load_loses_and_duplicates_no_sms(
    tmp_path: Path,
    own_redis: EmbeddedRedis,
    key_prefix: str,
    fake_twilio: FakeTwilio,
    worker_processes: Callable[..., WorkerProcess],
) -> None:
    settings = drill_settings(tmp_path, own_redis.url, key_prefix, fake_twilio.url)
    with sms_drill(settings, USERS) as (users, container):
        fake_twilio.delay = 0.05
        first = worker_processes(settings, queues="sms", concurrency=2)
        stream = ChallengeStream(container, list(users))
        stream.start()

        second = worker_processes(settings, queues="sms", concurrency=2)  # scale out
        wait_until(lambda: len(fake_twilio.messages) >= 10, timeout=20)
        first.begin_warm_shutdown()  # scale in, with sends in flight
        third = worker_processes(settings, queues="sms", concurrency=2)
        wait_until(lambda: len(fake_twilio.messages) >= 30, timeout=30)
        second.begin_warm_shutdown()
        assert not stream.done(), f"the stream ended before the last scaling step: {stream.errors}"
        # Waited for together: a stop can take about 31 s (see `WorkerProcess.warm_shutdown`).
        assert first.wait_stopped() == 0
        assert second.wait_stopped() == 0
        stream.stop()

        wait_until_settled(container, list(stream.issued), timeout=30)
        outcomes = assert_each_got_one_sms_or_failed(container, stream.issued, users, fake_twilio)
        assert outcomes == {"sent": len(stream.issued)}
        assert len(fake_twilio.messages) == len(stream.issued)
        assert "Warm shutdown" in first.output()
        assert third.process.poll() is None
