"""`GET /metrics` over real HTTP after real traffic: API → Redis → worker → fake Twilio.

The series and their values, not just their names: what was created, verified, expired,
rate-limited and delivered here is exactly what the scrape reports (this container's metrics
are its own; the multiprocess sum is checked in `test_metrics_multiprocess.py`).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

from tests.e2e.test_login_flows import create_user, enroll_sms, last_code
from tests.fixtures.pipeline import wait_until

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.bootstrap import Container
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.pipeline import ApiServer

pytestmark = pytest.mark.usefixtures("worker")

IP = "198.51.100.7"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"limit_challenges_per_ip": "3/600"}


def scrape(client: httpx.Client) -> str:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


def value(text: str, series: str) -> float | None:
    """The sample of exactly `series` (name and labels as Prometheus prints them), or None."""
    for line in text.splitlines():
        name, _, sample = line.rpartition(" ")
        if name == series:
            return float(sample)
    return None


def sms_login(api: httpx.Client, user_id: str) -> httpx.Response:
    return api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "sms", "context": {"ip": IP}}
    )


def test_a_scrape_after_three_sms_logins_reports_what_happened(
    api: httpx.Client,
    anonymous: httpx.Client,
    fake_twilio: FakeTwilio,
    container: Container,
    clock: FrozenClock,
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)  # one SMS: a confirmation, not a login
    challenges = []
    for _ in range(3):
        created = sms_login(api, user_id)
        assert created.status_code == 201, created.text
        challenges.append(created.json()["challenge_id"])
    code = last_code(fake_twilio, 4)  # the third login's code, once the worker sent it
    assert sms_login(api, user_id).status_code == 429  # the per-IP limit is 3
    verified = api.post(f"/v1/challenges/{challenges[2]}/verify", json={"code": code})
    assert verified.status_code == 200, verified.text
    clock.advance(700)  # past the other two codes' 10 minutes
    assert container.services.sweeps.sweep() == 2

    text = scrape(anonymous)
    sms_manage = 'application="manage",factor="sms"'
    assert value(text, f"mfa_challenges_created_total{{{sms_manage}}}") == 3
    assert value(text, f"mfa_challenges_verified_total{{{sms_manage}}}") == 1
    assert value(text, f"mfa_challenges_expired_total{{{sms_manage}}}") == 2
    # Every send is timed, the enrollment's included.
    assert value(text, 'mfa_delivery_latency_seconds_count{channel="sms"}') == 4
    assert value(text, 'mfa_rate_limit_rejections_total{limit="challenges_per_ip"}') == 1
    assert value(text, 'mfa_queue_depth{queue="sms"}') is not None
    assert value(text, 'mfa_queue_depth{queue="sweeps"}') is not None
    assert value(text, "mfa_long_poll_waiters") == 0


def test_a_long_poll_counts_as_a_waiter_while_it_waits(
    api: httpx.Client,
    anonymous: httpx.Client,
    api_server: ApiServer,
    fake_twilio: FakeTwilio,
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    challenge_id = sms_login(api, user_id).json()["challenge_id"]
    poll = threading.Thread(target=api.get, args=(f"/v1/challenges/{challenge_id}?wait=2",))
    poll.start()
    try:
        wait_until(lambda: api_server.waiters() == 1)
        assert value(scrape(anonymous), "mfa_long_poll_waiters") == 1
    finally:
        poll.join(10)
    assert value(scrape(anonymous), "mfa_long_poll_waiters") == 0


def test_provider_errors_are_counted_by_twilios_code(
    api: httpx.Client, anonymous: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    fake_twilio.fail_next(1, status=400, code=21610)  # the recipient unsubscribed
    challenge_id = sms_login(api, user_id).json()["challenge_id"]
    wait_until(lambda: api.get(f"/v1/challenges/{challenge_id}").json()["status"] == "failed")
    text = scrape(anonymous)
    assert value(text, 'mfa_provider_errors_total{channel="sms",provider_error_code="21610"}') == 1
    failed = 'mfa_challenges_failed_total{application="manage",factor="sms",reason="failed"}'
    assert value(text, failed) == 1


def test_an_application_no_api_key_belongs_to_is_counted_as_other(
    api: httpx.Client, anonymous: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    context = {"ip": IP, "application": "made-up-by-the-client"}
    created = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "sms", "context": context}
    )
    assert created.status_code == 201, created.text
    text = scrape(anonymous)
    assert value(text, 'mfa_challenges_created_total{application="other",factor="sms"}') == 1
    assert "made-up-by-the-client" not in text


def test_the_logs_carry_the_metrics_label_names(api: httpx.Client, fake_twilio: FakeTwilio) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    with capture_logs() as events:
        sms_login(api, user_id)
        sms_login(api, user_id)
        sms_login(api, user_id)
        assert sms_login(api, user_id).status_code == 429
        wait_until(lambda: sum(e["event"] == "sms_sent" for e in events) == 3)
    issued = next(e for e in events if e["event"] == "challenge_issued")
    assert (issued["factor"], issued["application"]) == ("sms", "manage")
    sent = next(e for e in events if e["event"] == "sms_sent")
    assert sent["delivery_latency_seconds"] >= 0
    limited = next(e for e in events if e["event"] == "rate_limited")
    assert limited["limit"] == "challenges_per_ip"
    assert not any(re.fullmatch(r"\d{6}", str(v)) for e in events for v in e.values())
