"""Twilio's delivery reports reach the challenge end to end: API → worker → Twilio → API.

The fake Twilio posts its signed status callbacks to the URL each SMS was sent with, which is
this API server's real loopback address (`MFA_PUBLIC_URL`), exactly as Twilio would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mfa_pipeline.api.main import app_for
from tests.e2e.test_login_flows import create_user, enroll_sms
from tests.fixtures.pipeline import ApiServer, wait_until
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from mfa_pipeline.bootstrap import Container
    from tests.fakes.fake_twilio import FakeTwilio

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def public_port() -> int:
    return free_port()


@pytest.fixture
def settings_overrides(public_port: int) -> dict[str, Any]:
    return {"public_url": f"http://127.0.0.1:{public_port}/"}


@pytest.fixture
def api_server(container: Container, public_port: int) -> Iterator[ApiServer]:
    server = ApiServer(app_for(container), port=public_port)
    server.start()
    yield server
    server.stop()


def login_delivery(api: httpx.Client, challenge_id: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/v1/challenges/{challenge_id}").json()["delivery"]
    return found


def test_twilios_delivered_report_reaches_the_challenge_through_a_real_worker(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"})
    assert created.status_code == 201, created.text
    challenge_id = created.json()["challenge_id"]
    wait_until(lambda: login_delivery(api, challenge_id)["status"] == "delivered")
    message = fake_twilio.messages[-1]
    assert login_delivery(api, challenge_id)["provider_id"] == message["sid"]
    # Enrollment and login each got `sent` and `delivered`, all accepted by the API. The two
    # messages' reports are posted from their own threads, so they may interleave.
    answered = fake_twilio.wait_for_callbacks(4)
    assert sorted(answered) == sorted([("sent", 204), ("delivered", 204)] * 2)


def test_an_undelivered_report_reaches_the_challenge_with_its_error_code(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    fake_twilio.callback_statuses = ["sent", "undelivered"]
    fake_twilio.callback_error_code = "30003"
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"})
    challenge_id = created.json()["challenge_id"]
    wait_until(lambda: login_delivery(api, challenge_id)["status"] == "undelivered")
    assert login_delivery(api, challenge_id)["error_code"] == "30003"
    assert api.get(f"/v1/challenges/{challenge_id}").json()["status"] == "pending"
