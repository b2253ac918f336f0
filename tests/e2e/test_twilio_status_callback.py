"""Twilio's delivery status callback over real HTTP: signatures, mapping, late and stale reports.

The service believes it is reached at `PUBLIC_URL` (a proxy in front of it), while the test
talks to its loopback port: a signature is checked against the configured public URL, never
against the Host a request came with. Signatures are made with the `twilio` library's own
`RequestValidator`, as Twilio makes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from twilio.request_validator import RequestValidator

from mfa_pipeline.domain.challenges import RequestContext, RequestedFactor
from mfa_pipeline.services.delivery import DeliveryOutcome
from tests.fixtures.pipeline import new_user_id
from tests.fixtures.twilio import TWILIO_TOKEN

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.bootstrap import Container
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio

PUBLIC_URL = "https://mfa.example.test"
STATUS_PATH = "/v1/providers/twilio/status"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"public_url": PUBLIC_URL}


@pytest.fixture(autouse=True)
def no_automatic_reports(fake_twilio: FakeTwilio) -> None:
    """Here the test posts every report itself; the fake's own would go to the public URL."""
    fake_twilio.callback_statuses = []


def sent_challenge(container: Container, fake: FakeTwilio) -> tuple[str, str]:
    """An SMS login challenge whose first code Twilio accepted: (challenge id, message SID)."""
    user_id = new_user_id()
    container.services.enrollment.put_user(user_id=user_id, firm_id="firm-test")
    enrollment = container.services.enrollment.enroll_sms(
        user_id=user_id, phone="+12015550123", region=None
    )
    container.services.sms_delivery.deliver(challenge_id=enrollment.challenge_id, seq=0)
    code = fake.messages[-1]["Body"].split("code is ")[1][:6]
    container.services.enrollment.activate(
        user_id=user_id, factor_id=enrollment.factor.factor_id, code=code
    )
    view = container.services.challenges.issue(
        user_id=user_id, factor=RequestedFactor.SMS, context=RequestContext(ip="203.0.113.9")
    )
    challenge_id = view.challenge.challenge_id
    assert (
        container.services.sms_delivery.deliver(challenge_id=challenge_id, seq=0)
        is DeliveryOutcome.SENT
    )
    return challenge_id, fake.messages[-1]["sid"]


def report_form(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    form = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "To": "+12015550123",
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
    }
    if error_code is not None:
        form["ErrorCode"] = error_code
    return form


def signed(url: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


def query_of(challenge_id: str, seq: int = 0) -> str:
    return f"challenge_id={challenge_id}&seq={seq}"


def post_report(
    client: httpx.Client,
    query: str,
    form: dict[str, str],
    *,
    signature: str | None = "",
) -> httpx.Response:
    """POST as Twilio does; `signature=""` signs it correctly, None sends no header."""
    if signature == "":
        signature = signed(f"{PUBLIC_URL}{STATUS_PATH}?{query}", form)
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    return client.post(f"{STATUS_PATH}?{query}", data=form, headers=headers)


def delivery(api: httpx.Client, challenge_id: str) -> dict[str, Any]:
    answer = api.get(f"/v1/challenges/{challenge_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["delivery"]
    return found


def test_the_sms_is_sent_with_a_callback_url_naming_its_challenge_and_send(
    container: Container, fake_twilio: FakeTwilio
) -> None:
    challenge_id, _ = sent_challenge(container, fake_twilio)
    assert fake_twilio.messages[-1]["StatusCallback"] == (
        f"{PUBLIC_URL}{STATUS_PATH}?{query_of(challenge_id)}"
    )


def test_a_signed_delivered_report_marks_the_delivery_delivered(
    container: Container, fake_twilio: FakeTwilio, api: httpx.Client, anonymous: httpx.Client
) -> None:
    challenge_id, sid = sent_challenge(container, fake_twilio)
    answer = post_report(anonymous, query_of(challenge_id), report_form(sid, "delivered"))
    assert answer.status_code == 204, answer.text
    assert delivery(api, challenge_id)["status"] == "delivered"
    assert api.get(f"/v1/challenges/{challenge_id}").json()["status"] == "pending"


def test_an_undelivered_report_carries_twilios_error_code(
    container: Container, fake_twilio: FakeTwilio, api: httpx.Client, anonymous: httpx.Client
) -> None:
    challenge_id, sid = sent_challenge(container, fake_twilio)
    form = report_form(sid, "undelivered", error_code="30003")
    assert post_report(anonymous, query_of(challenge_id), form).status_code == 204
    found = delivery(api, challenge_id)
    assert (found["status"], found["error_code"]) == ("undelivered", "30003")


@pytest.mark.parametrize(
    ("twilio_status", "expected"),
    [("sent", "sent"), ("delivered", "delivered"), ("undelivered", "undelivered"),
     ("failed", "failed"), ("queued", "sent"), ("sending", "sent"), ("accepted", "sent")],
)  # fmt: skip
def test_twilio_statuses_map_onto_the_delivery(
    container: Container,
    fake_twilio: FakeTwilio,
    *,
    api: httpx.Client,
    anonymous: httpx.Client,
    twilio_status: str,
    expected: str,
) -> None:
    challenge_id, sid = sent_challenge(container, fake_twilio)
    answer = post_report(anonymous, query_of(challenge_id), report_form(sid, twilio_status))
    assert answer.status_code == 204
    assert delivery(api, challenge_id)["status"] == expected


def test_a_late_sent_report_does_not_undo_delivered(
    container: Container, fake_twilio: FakeTwilio, api: httpx.Client, anonymous: httpx.Client
) -> None:
    challenge_id, sid = sent_challenge(container, fake_twilio)
    assert post_report(anonymous, query_of(challenge_id), report_form(sid, "delivered")).is_success
    assert post_report(anonymous, query_of(challenge_id), report_form(sid, "sent")).is_success
    assert delivery(api, challenge_id)["status"] == "delivered"


def test_a_report_on_the_send_before_a_resend_leaves_the_new_send_alone(
    container: Container,
    fake_twilio: FakeTwilio,
    clock: FrozenClock,
    api: httpx.Client,
    anonymous: httpx.Client,
) -> None:
    challenge_id, first_sid = sent_challenge(container, fake_twilio)
    clock.advance(31)  # past the resend interval
    assert api.post(f"/v1/challenges/{challenge_id}/resend").status_code == 202
    assert (
        container.services.sms_delivery.deliver(challenge_id=challenge_id, seq=1)
        is DeliveryOutcome.SENT
    )
    second_sid = fake_twilio.messages[-1]["sid"]
    late = report_form(first_sid, "undelivered", error_code="30005")
    assert post_report(anonymous, query_of(challenge_id, seq=0), late).status_code == 204
    found = delivery(api, challenge_id)
    assert (found["status"], found["provider_id"], found["error_code"]) == (
        "sent",
        second_sid,
        None,
    )


def test_a_forged_signature_is_forbidden(
    container: Container, fake_twilio: FakeTwilio, api: httpx.Client, anonymous: httpx.Client
) -> None:
    challenge_id, sid = sent_challenge(container, fake_twilio)
    query, form = query_of(challenge_id), report_form(sid, "delivered")
    forged = signed(f"{PUBLIC_URL}{STATUS_PATH}?{query}", form, token="f" * 32)
    answer = post_report(anonymous, query, form, signature=forged)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"
    assert delivery(api, challenge_id)["status"] == "sent"


def test_a_signature_for_the_address_the_request_came_to_is_forbidden(
    container: Container, fake_twilio: FakeTwilio, anonymous: httpx.Client
) -> None:
    """Only the configured public URL counts: a Host header is the caller's to choose."""
    challenge_id, sid = sent_challenge(container, fake_twilio)
    query, form = query_of(challenge_id), report_form(sid, "delivered")
    direct = signed(f"{anonymous.base_url}{STATUS_PATH}?{query}", form)
    answer = post_report(anonymous, query, form, signature=direct)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"


def test_a_signature_moved_to_another_challenge_is_forbidden(
    container: Container, fake_twilio: FakeTwilio, api: httpx.Client, anonymous: httpx.Client
) -> None:
    mine, sid = sent_challenge(container, fake_twilio)
    theirs, _ = sent_challenge(container, fake_twilio)
    form = report_form(sid, "undelivered")
    signature = signed(f"{PUBLIC_URL}{STATUS_PATH}?{query_of(mine)}", form)
    answer = post_report(anonymous, query_of(theirs), form, signature=signature)
    assert answer.status_code == 403
    assert delivery(api, theirs)["status"] == "sent"


def test_a_changed_status_under_a_valid_signature_is_forbidden(
    container: Container, fake_twilio: FakeTwilio, anonymous: httpx.Client
) -> None:
    challenge_id, sid = sent_challenge(container, fake_twilio)
    query = query_of(challenge_id)
    signature = signed(f"{PUBLIC_URL}{STATUS_PATH}?{query}", report_form(sid, "delivered"))
    tampered = report_form(sid, "undelivered")
    assert post_report(anonymous, query, tampered, signature=signature).status_code == 403


def test_a_report_without_a_signature_header_is_forbidden(
    container: Container, fake_twilio: FakeTwilio, anonymous: httpx.Client
) -> None:
    challenge_id, sid = sent_challenge(container, fake_twilio)
    form = report_form(sid, "delivered")
    answer = post_report(anonymous, query_of(challenge_id), form, signature=None)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"


def test_a_signed_report_for_an_unknown_challenge_is_accepted_and_ignored(
    anonymous: httpx.Client,
) -> None:
    query = query_of("000" + "A" * 28)
    assert post_report(anonymous, query, report_form("SM1", "delivered")).status_code == 204
