"""Fault drill: a whole SMS worker (main process and every thread) is SIGKILLed mid-burst.

An OOM kill or a lost host takes every message the worker held: the sends it had begun and
the ones it had prefetched. A Redis broker hands those back only after its visibility
timeout; RabbitMQ at once (the connection closes). Either way the store's recovery sweep (beat
and a `sweeps` worker, `delivery_stale_seconds` here shortened) publishes again each send that
stopped moving, and a new worker started with the command's defaults delivers them: every
challenge ends with exactly one SMS, or `failed` (`interrupted`: its send had begun, so the
provider may have it) with at most one. None is lost, none gets two.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.cli.commands import WORKER_CONCURRENCY
from tests.drills.kit import (
    assert_each_got_one_sms_or_failed,
    drill_settings,
    issue_sms_challenge,
    sms_drill,
    wait_until_settled,
)
from tests.e2e.test_rabbitmq_broker import amqp_url  # noqa: F401 - the fixture, by name

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mfa_pipeline.cli.embedded_redis import EmbeddedRedis
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.worker_processes import BeatProcess, WorkerProcess

pytestmark = pytest.mark.drill

CHALLENGES = 150  # more than the default worker's threads: some are held but not begun
STALE_SECONDS = 4
PROVIDER_SECONDS = 1.0


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_whole_worker_killed_mid_burst_loses_no_sms_and_sends_none_twice(  # noqa: PLR0917 - its fixtures
    request: pytest.FixtureRequest,
    broker: str,
    tmp_path: Path,
    own_redis: EmbeddedRedis,
    key_prefix: str,
    fake_twilio: FakeTwilio,
    worker_processes: Callable[..., WorkerProcess],
    beat_processes: Callable[..., BeatProcess],
) -> None:
    overrides: dict[str, object] = {
        "delivery_stale_seconds": STALE_SECONDS,
        "delivery_recovery_interval_seconds": 1,
    }
    if broker == "rabbitmq":
        overrides["broker_url"] = request.getfixturevalue("amqp_url")
    settings = drill_settings(tmp_path, own_redis.url, key_prefix, fake_twilio.url, **overrides)
    with sms_drill(settings, CHALLENGES) as (users, container):
        worker_processes(settings, queues="sweeps", concurrency=1)
        beat_processes(settings)
        victim = worker_processes(settings, queues="sms", concurrency=None)  # the defaults
        fake_twilio.delay = PROVIDER_SECONDS
        challenges = {issue_sms_challenge(container, user): user for user in users}

        deadline = time.monotonic() + 20
        while fake_twilio.requests_count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the first sends are with the provider
        os.killpg(victim.pid, signal.SIGKILL)  # the whole worker, as an OOM kill does
        killed_at = time.monotonic()
        victim.process.wait(timeout=5)
        begun = fake_twilio.requests_count
        assert 0 < begun < CHALLENGES, "the kill must land mid-burst"

        worker_processes(settings, queues="sms", concurrency=None)
        wait_until_settled(container, list(challenges), timeout=STALE_SECONDS + 40)
        settled_in = time.monotonic() - killed_at
        outcomes = assert_each_got_one_sms_or_failed(container, challenges, users, fake_twilio)

    print(
        f"\n[{broker}] {CHALLENGES} challenges; {begun} sends had reached the provider at the "
        f"kill; in all {outcomes['sent']} sent (exactly one SMS each), "
        f"{outcomes['failed']} failed as interrupted; all settled {settled_in:.1f} s after "
        f"the kill"
    )
    assert sum(outcomes.values()) == CHALLENGES
    # Only a send that had begun may fail, one per thread at most; every other challenge
    # (held by the dead worker, or still queued) got its one SMS from the new worker.
    assert outcomes["failed"] <= WORKER_CONCURRENCY
    assert outcomes["sent"] >= CHALLENGES - WORKER_CONCURRENCY
