"""Fault drill: SMS worker pool processes are killed with SIGKILL in the middle of deliveries.

The worker is a real `mfa-pipeline worker --pool prefork` (pool processes to kill; a whole
worker killed is `test_whole_worker_killed`). Each send waits 0.3 s at the fake Twilio,
so a kill lands while requests are with the provider. `task_reject_on_worker_lost` puts the
killed task back on the queue; its second run finds the send claimed and not recorded, and
fails the challenge (`interrupted`) rather than risk a second code. So every challenge ends
with exactly one SMS, or failed with at most one.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

import pytest

from tests.drills.kit import (
    assert_each_got_one_sms_or_failed,
    drill_settings,
    is_settled,
    issue_sms_challenge,
    sms_drill,
    wait_until_settled,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mfa_pipeline.cli.embedded_redis import EmbeddedRedis
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.worker_processes import WorkerProcess

pytestmark = pytest.mark.drill

CHALLENGES = 30
KILLS = 4


def test_killing_pool_processes_mid_send_leaves_each_challenge_with_one_sms_or_failed(
    tmp_path: Path,
    own_redis: EmbeddedRedis,
    key_prefix: str,
    fake_twilio: FakeTwilio,
    worker_processes: Callable[..., WorkerProcess],
) -> None:
    settings = drill_settings(tmp_path, own_redis.url, key_prefix, fake_twilio.url)
    with sms_drill(settings, CHALLENGES) as (users, container):
        worker = worker_processes(settings, queues="sms", concurrency=2, pool="prefork")
        fake_twilio.delay = 0.3
        challenges = {issue_sms_challenge(container, user): user for user in users}

        kills = 0
        deadline = time.monotonic() + 20
        while kills < KILLS and time.monotonic() < deadline:
            if all(is_settled(container, cid) for cid in challenges):
                break
            seen = fake_twilio.requests_count
            while fake_twilio.requests_count == seen and time.monotonic() < deadline:
                time.sleep(0.01)  # a send has just reached the provider
            pool = worker.pool_pids()
            if pool:
                os.kill(pool[kills % len(pool)], signal.SIGKILL)
                kills += 1
            time.sleep(0.5)  # let the pool replace it and get on with the queue

        wait_until_settled(container, list(challenges), timeout=25)
        outcomes = assert_each_got_one_sms_or_failed(container, challenges, users, fake_twilio)
        assert kills >= 2
        assert sum(outcomes.values()) == CHALLENGES
        # A killed process held at most one send; each may fail one challenge, no more.
        assert 1 <= outcomes["failed"] <= kills
        assert worker.process.poll() is None  # the worker itself lives on
