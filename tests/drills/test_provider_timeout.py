"""Fault drill: the SMS provider stops answering for a while, then comes back.

Time-scaled: the production drill is a 30 s outage against the default settings (Twilio
timeout 10 s, backoff 2 s doubling to 60 s, 5 retries). Here the outage lasts 4 s, with a
0.5 s Twilio timeout and a 0.25 s backoff capped at 1 s, and more retries (12) so the retry
budget still outlasts the outage by the same kind of margin. The shape is what is tested:
sends time out, are recorded `retrying`, are retried with backoff, and once the provider
answers again every challenge gets exactly one SMS and none fails.

The provider "hangs" behind a TCP proxy in black-hole mode: requests are accepted and never
answered, and none of them reaches the fake Twilio, so no timed-out request turns into a
late second SMS.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.drills.kit import (
    assert_each_got_one_sms_or_failed,
    drill_settings,
    issue_sms_challenge,
    sms_drill,
    wait_until_settled,
)
from tests.fakes.tcp_proxy import TcpProxy
from tests.fixtures.pipeline import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mfa_pipeline.cli.embedded_redis import EmbeddedRedis
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.worker_processes import WorkerProcess

pytestmark = pytest.mark.drill

OUTAGE_SECONDS = 4.0
CHALLENGES = 10


def test_a_provider_outage_is_retried_through_and_every_challenge_gets_one_sms_after_it(
    tmp_path: Path,
    own_redis: EmbeddedRedis,
    key_prefix: str,
    fake_twilio: FakeTwilio,
    worker_processes: Callable[..., WorkerProcess],
) -> None:
    target = urlsplit(fake_twilio.url)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 80) as proxy:
        settings = drill_settings(
            tmp_path,
            own_redis.url,
            key_prefix,
            f"http://127.0.0.1:{proxy.port}",
            twilio_timeout_seconds=0.5,
            sms_retry_backoff_seconds=0.25,
            sms_retry_backoff_max_seconds=1.0,
            sms_max_retries=12,
        )
        with sms_drill(settings, CHALLENGES) as (users, container):
            worker_processes(settings, queues="sms", concurrency=4)
            proxy.blackhole()
            started = time.monotonic()
            challenges = {issue_sms_challenge(container, user): user for user in users}

            def retried_after_a_timeout() -> bool:
                stored = [container.ports.store.get(cid) for cid in challenges]
                return any(
                    c is not None
                    and c.delivery.attempts >= 2
                    and c.delivery.error_code == "timeout"
                    for c in stored
                )

            # The outage lasts OUTAGE_SECONDS, and at least until a timed-out send was retried.
            wait_until(retried_after_a_timeout, timeout=OUTAGE_SECONDS + 10)
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
            stored = [container.ports.store.get(cid) for cid in challenges]
            assert {c.delivery.status.value for c in stored if c} <= {"retrying", "sending"}
            assert fake_twilio.messages == []
            proxy.restore()

            wait_until_settled(container, list(challenges), timeout=20)
            outcomes = assert_each_got_one_sms_or_failed(container, challenges, users, fake_twilio)
            assert outcomes == {"sent": CHALLENGES}
