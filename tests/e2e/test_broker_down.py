"""The broker is down while the challenge store is up (a separate broker, as on RabbitMQ).

Over real HTTP: creation answers 503 `unavailable` with `Retry-After`, the challenge it had
stored is failed (`delivery.error_code: queue_unavailable`), and a copy of the send that
reached the broker after all would find nothing to send. So the login page's next try is the
user's only code, never a second one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mfa_pipeline.cli.embedded_redis import free_port
from mfa_pipeline.services.delivery import DeliveryOutcome
from tests.drills.kit import enroll_sms_users

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.config import Settings
    from tests.fakes.fake_twilio import FakeTwilio


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"broker_url": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there


def stored_ids(container: Container, settings: Settings) -> set[str]:
    keys = container.redis.scan_iter(match=f"{settings.key_prefix}:*:ch:*", count=1000)
    return {str(key).rsplit(":", 1)[1] for key in keys}


def test_a_challenge_whose_sms_cannot_be_queued_answers_503_and_is_never_sent(
    settings: Settings, container: Container, api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    (user_id,) = enroll_sms_users(settings, 1)
    before = stored_ids(container, settings)

    refused = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"})

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "unavailable"
    assert refused.headers["Retry-After"]
    (stranded,) = stored_ids(container, settings) - before
    shown = api.get(f"/v1/challenges/{stranded}").json()
    assert shown["status"] == "failed"
    assert shown["delivery"] == shown["delivery"] | {
        "status": "failed",
        "error_code": "queue_unavailable",
    }
    assert (
        container.services.sms_delivery.deliver(challenge_id=stranded, seq=0)
        is DeliveryOutcome.SKIPPED
    )
    assert fake_twilio.messages == []
