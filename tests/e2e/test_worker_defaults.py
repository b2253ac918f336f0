"""`mfa-pipeline worker --queues sms` with no other flag keeps many provider calls in flight.

A real worker process started as operators start it; the fake Twilio answers each SMS after a
provider-like delay and counts how many it was answering at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfa_pipeline.cli.commands import WORKER_CONCURRENCY
from tests.drills.kit import (
    assert_each_got_one_sms_or_failed,
    drill_settings,
    issue_sms_challenge,
    sms_drill,
    wait_until_settled,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.worker_processes import WorkerProcess

CHALLENGES = 48  # fewer than the default threads: all of them can be with the provider at once


def test_a_worker_with_the_default_flags_has_many_sends_with_the_provider_at_once(
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    fake_twilio: FakeTwilio,
    worker_processes: Callable[..., WorkerProcess],
) -> None:
    assert CHALLENGES < WORKER_CONCURRENCY
    settings = drill_settings(tmp_path, redis_url, key_prefix, fake_twilio.url)
    with sms_drill(settings, CHALLENGES) as (users, container):
        worker = worker_processes(settings, queues="sms", concurrency=None)
        assert "(thread)" in worker.output()  # Celery's banner: the threads pool
        fake_twilio.delay = 1.0
        challenges = {issue_sms_challenge(container, user): user for user in users}
        wait_until_settled(container, list(challenges), timeout=60)
        outcomes = assert_each_got_one_sms_or_failed(container, challenges, users, fake_twilio)
    assert outcomes["sent"] == CHALLENGES
    # A prefork x8 worker would never have more than 8 sends with the provider at once.
    assert fake_twilio.max_in_flight >= CHALLENGES // 2
