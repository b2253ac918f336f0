"""Push approval end to end: HTTP → Redis → a real Celery worker → pyfcm → a fake FCM, and back.

The device is the project's simulator (`mfa_pipeline.cli.device`): it signs with a real Ed25519 key.
Every forged, replayed, late or cross-user answer is tried, and the challenge is checked to be
unchanged afterwards.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mfa_pipeline.cli.device import SimulatedDevice
from tests.e2e.test_login_flows import enroll_totp
from tests.fixtures.pipeline import new_user_id, wait_until

if TYPE_CHECKING:
    from mfa_pipeline.bootstrap import Container
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_fcm import FakeFcm
    from tests.fixtures.pipeline import ApiServer

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def settings_overrides(fcm_settings: dict[str, object]) -> dict[str, Any]:
    # The per-user creation window (10 per 10 minutes) would hide the push limits under test.
    return {**fcm_settings, "limit_challenges_per_user": "100/600"}


def new_user(api: httpx.Client) -> str:
    user_id = new_user_id()
    assert api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"}).status_code == 200
    return user_id


def with_device(api: httpx.Client, user_id: str | None = None) -> tuple[str, SimulatedDevice]:
    user_id = user_id or new_user(api)
    device = SimulatedDevice.generate()
    device.register(api, user_id)
    return user_id, device


def push_challenge(api: httpx.Client, user_id: str, **context: str) -> dict[str, Any]:
    created = api.post(
        "/v1/challenges",
        json={
            "user_id": user_id,
            "factor": "push",
            "context": {"ip": "203.0.113.7", "user_agent": "Firefox", **context},
        },
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def respond(anonymous: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return anonymous.post("/v1/push/responses", json=body)


def status_of(api: httpx.Client, challenge_id: str) -> str:
    return str(api.get(f"/v1/challenges/{challenge_id}").json()["status"])


# --- registration ----------------------------------------------------------------------------


def test_a_device_registers_and_a_token_refresh_updates_it(
    api: httpx.Client, container: Container
) -> None:
    user_id = new_user(api)
    device = SimulatedDevice.generate("Ana's phone")
    first = api.post(f"/v1/users/{user_id}/factors/push", json=device.registration())
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["type"] == "push"
    assert body["status"] == "active"
    assert body["device_id"] == body["factor_id"]

    device.push_token = "refreshed-token"
    again = api.post(f"/v1/users/{user_id}/factors/push", json=device.registration())
    assert again.status_code == 201, again.text
    assert again.json()["device_id"] == body["device_id"]
    assert again.json()["refreshed"] is True
    factors = api.get(f"/v1/users/{user_id}/factors").json()
    assert [(f["type"], f["device_name"], f["platform"]) for f in factors] == [
        ("push", "Ana's phone", "android")
    ]
    stored = container.ports.factors.get_factor(user_id, body["device_id"])
    assert stored is not None
    assert "refreshed-token" not in (stored.push_token_ciphertext or "")  # encrypted at rest
    assert device.public_key not in (stored.public_key or "")  # sealed to user and factor


def test_several_devices_each_get_the_push(api: httpx.Client, fake_fcm: FakeFcm) -> None:
    user_id, first = with_device(api)
    _, second = with_device(api, user_id)
    challenge = push_challenge(api, user_id)
    pushes = fake_fcm.wait_for(2)
    assert {p["token"] for p in pushes} == {first.push_token, second.push_token}
    assert {p["data"]["challenge_id"] for p in pushes} == {challenge["challenge_id"]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"public_key": "not base64!"}, "public_key"),
        ({"public_key": base64.b64encode(b"short").decode()}, "public_key"),
        ({"platform": "windows-phone"}, "platform"),
        ({"push_token": ""}, "push_token"),
    ],
)
def test_a_bad_registration_is_refused_and_adds_nothing(
    api: httpx.Client, change: dict[str, str], field: str
) -> None:
    user_id = new_user(api)
    body = {**SimulatedDevice.generate().registration(), **change}
    refused = api.post(f"/v1/users/{user_id}/factors/push", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_request"
    assert field in refused.text
    assert api.get(f"/v1/users/{user_id}/factors").json() == []


def test_registration_needs_an_api_key(anonymous: httpx.Client) -> None:
    body = SimulatedDevice.generate().registration()
    refused = anonymous.post("/v1/users/someone/factors/push", json=body)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"


# --- delivery --------------------------------------------------------------------------------


def test_the_push_carries_the_login_and_three_numbers_with_the_right_one(
    api: httpx.Client, fake_fcm: FakeFcm
) -> None:
    user_id, device = with_device(api)
    challenge = push_challenge(api, user_id, application="grow")
    assert challenge["status"] == "pending"
    number = challenge["number_match"]
    assert len(number) == 2
    assert number.isdigit()
    (push,) = fake_fcm.wait_for(1)
    assert push["token"] == device.push_token
    data = push["data"]
    choices = data["number_choices"].split(",")
    assert len(set(choices)) == 3
    assert number in choices
    assert data["challenge_id"] == challenge["challenge_id"]
    assert (data["application"], data["ip"], data["user_agent"]) == (
        "grow",
        "203.0.113.7",
        "Firefox",
    )
    assert data["expires_at"] == challenge["expires_at"]
    ttl = int(push["android"]["ttl"].removesuffix("s"))
    assert 110 <= ttl <= 120  # the push's remaining life
    delivery = wait_until(
        lambda: (
            api.get(f"/v1/challenges/{challenge['challenge_id']}").json()["delivery"]
            if api.get(f"/v1/challenges/{challenge['challenge_id']}").json()["delivery"]["status"]
            == "sent"
            else None
        )
    )
    assert delivery["provider_id"].startswith("projects/")


def test_auto_picks_push_when_the_user_has_a_device(api: httpx.Client, clock: FrozenClock) -> None:
    user_id, _ = with_device(api)
    enroll_totp(api, clock, user_id)
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "auto"})
    assert created.status_code == 201
    assert created.json()["factor"] == "push"


def test_an_fcm_error_is_retried_until_the_push_goes_through(
    api: httpx.Client, fake_fcm: FakeFcm
) -> None:
    user_id, _ = with_device(api)
    fake_fcm.fail_next(2, status=500, error_status="INTERNAL")
    challenge = push_challenge(api, user_id)
    fake_fcm.wait_for(1)
    sent = wait_until(
        lambda: (
            (d := api.get(f"/v1/challenges/{challenge['challenge_id']}").json()["delivery"])[
                "status"
            ]
            == "sent"
            and d
        )
    )
    assert sent["attempts"] == 3


def test_an_unregistered_token_deactivates_the_device_and_fails_the_push(
    api: httpx.Client, fake_fcm: FakeFcm, container: Container
) -> None:
    user_id, device = with_device(api)
    fake_fcm.unregister(device.push_token)
    challenge = push_challenge(api, user_id)
    cid = challenge["challenge_id"]
    wait_until(lambda: status_of(api, cid) == "failed")
    assert api.get(f"/v1/challenges/{cid}").json()["delivery"]["status"] == "failed"
    stored = container.ports.factors.get_factor(user_id, device.device_id or "")
    assert stored is not None
    assert stored.status.value == "inactive"
    # A deactivated device can no longer answer, even with a valid signature.
    body = device.answer(cid, "approve", number="12", timestamp=int(time.time()))
    assert api.post("/v1/push/responses", json=body).status_code in {401, 409}
    # With no device left, the user has no push factor to be challenged with.
    refused = api.post("/v1/challenges", json={"user_id": user_id, "factor": "push"})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "factor_not_enrolled"


# --- answers ---------------------------------------------------------------------------------


def sent(api: httpx.Client, fake_fcm: FakeFcm, user_id: str, count: int = 1) -> dict[str, Any]:
    challenge = push_challenge(api, user_id)
    fake_fcm.wait_for(count)
    return challenge


def test_the_right_number_approves(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock
) -> None:
    user_id, device = with_device(api)
    challenge = sent(api, fake_fcm, user_id)
    cid = challenge["challenge_id"]
    body = device.answer(
        cid, "approve", number=challenge["number_match"], timestamp=int(clock.now())
    )
    answered = respond(anonymous, body)
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "approved"
    assert status_of(api, cid) == "approved"
    scraped = api.get("/metrics").text
    assert 'mfa_challenges_verified_total{application="manage",factor="push"} 1.0' in scraped


def test_a_deny_denies(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock
) -> None:
    user_id, device = with_device(api)
    cid = sent(api, fake_fcm, user_id)["challenge_id"]
    answered = respond(anonymous, device.answer(cid, "deny", timestamp=int(clock.now())))
    assert answered.json()["status"] == "denied"
    assert status_of(api, cid) == "denied"
    assert api.get(f"/v1/challenges/{cid}").json()["fraud_reported"] is False


def test_a_wrong_number_denies(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock
) -> None:
    user_id, device = with_device(api)
    challenge = sent(api, fake_fcm, user_id)
    wrong = next(n for n in ("11", "22", "33") if n != challenge["number_match"])
    body = device.answer(
        challenge["challenge_id"], "approve", number=wrong, timestamp=int(clock.now())
    )
    answered = respond(anonymous, body)
    assert answered.status_code == 200
    assert answered.json()["status"] == "denied"
    assert status_of(api, challenge["challenge_id"]) == "denied"


def test_not_me_is_reported_and_blocks_new_pushes_but_not_other_factors(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock
) -> None:
    user_id, device = with_device(api)
    totp = enroll_totp(api, clock, user_id)
    cid = sent(api, fake_fcm, user_id)["challenge_id"]
    body = device.answer(cid, "deny", reason="not_me", timestamp=int(clock.now()))
    assert respond(anonymous, body).json()["status"] == "denied"
    assert api.get(f"/v1/challenges/{cid}").json()["fraud_reported"] is True
    events = [e["event"] for e in api.get(f"/v1/users/{user_id}/audit").json()["events"]]
    assert "fraud_reported" in events

    refused = api.post("/v1/challenges", json={"user_id": user_id, "factor": "push"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 800 < int(refused.headers["Retry-After"]) <= 900
    # `auto` moves on to the authenticator, and a TOTP login still works.
    assert (
        api.post("/v1/challenges", json={"user_id": user_id, "factor": "auto"}).json()["factor"]
        == "totp"
    )
    login = api.post(
        "/v1/challenges",
        json={"user_id": user_id, "factor": "totp", "code": totp.at(clock.now())},
    )
    assert login.json()["status"] == "verified"


def test_not_me_on_an_answered_push_is_refused_and_blocks_nothing(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock
) -> None:
    """Issue 12: the block applies only once the answer is accepted, so a late or replayed
    "not me" cannot silence the user's pushes for 15 minutes."""
    user_id, device = with_device(api)
    cid = sent(api, fake_fcm, user_id)["challenge_id"]
    assert respond(anonymous, device.answer(cid, "deny", timestamp=int(clock.now()))).is_success

    late = respond(
        anonymous, device.answer(cid, "deny", reason="not_me", timestamp=int(clock.now()))
    )

    assert late.status_code == 409
    events = api.get(f"/v1/users/{user_id}/audit").json()["events"]
    assert all(e["event"] != "fraud_reported" for e in events)
    assert api.get(f"/v1/challenges/{cid}").json()["fraud_reported"] is False
    again = api.post("/v1/challenges", json={"user_id": user_id, "factor": "push"})
    assert again.status_code == 201, again.text


def test_an_answer_after_the_push_expired_is_refused(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock
) -> None:
    user_id, device = with_device(api)
    challenge = sent(api, fake_fcm, user_id)
    clock.advance(121)  # a push lives 2 minutes
    body = device.answer(
        challenge["challenge_id"],
        "approve",
        number=challenge["number_match"],
        timestamp=int(clock.now()),
    )
    late = respond(anonymous, body)
    assert late.status_code == 410
    assert late.json()["error"]["code"] == "challenge_expired"
    assert status_of(api, challenge["challenge_id"]) == "expired"


def test_a_replayed_answer_changes_nothing(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock
) -> None:
    user_id, device = with_device(api)
    challenge = sent(api, fake_fcm, user_id)
    cid = challenge["challenge_id"]
    deny = device.answer(cid, "deny", timestamp=int(clock.now()))
    assert respond(anonymous, deny).status_code == 200
    again = respond(anonymous, deny)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "challenge_completed"
    # An approval captured and replayed after a deny cannot flip it either.
    approve = device.answer(
        cid, "approve", number=challenge["number_match"], timestamp=int(clock.now())
    )
    assert respond(anonymous, approve).status_code == 409
    assert status_of(api, cid) == "denied"


def test_an_answer_signed_by_another_users_device_is_refused(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock
) -> None:
    victim, _ = with_device(api)
    _, attacker = with_device(api)
    challenge = sent(api, fake_fcm, victim)
    cid = challenge["challenge_id"]
    body = attacker.answer(
        cid, "approve", number=challenge["number_match"], timestamp=int(clock.now())
    )
    refused = respond(anonymous, body)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_signature"
    assert status_of(api, cid) == "pending"


@pytest.mark.parametrize(
    "forge",
    [
        lambda body: {**body, "signature": "%%% not base64 %%%"},
        lambda body: {**body, "signature": base64.b64encode(b"x" * 64).decode()},
        lambda body: {**body, "signature": base64.b64encode(b"x" * 10).decode()},
        lambda body: {**body, "number": "99" if body.get("number") != "99" else "98"},
        lambda body: {**body, "decision": "deny"},
        lambda body: {**body, "timestamp": body["timestamp"] + 1},
    ],
    ids=["bad-base64", "garbage-signature", "short-signature", "number", "decision", "time"],
)
def test_a_forged_or_altered_answer_is_refused_and_changes_nothing(
    api: httpx.Client,
    anonymous: httpx.Client,
    fake_fcm: FakeFcm,
    clock: FrozenClock,
    forge: Any,
) -> None:
    user_id, device = with_device(api)
    challenge = sent(api, fake_fcm, user_id)
    cid = challenge["challenge_id"]
    body = device.answer(
        cid, "approve", number=challenge["number_match"], timestamp=int(clock.now())
    )
    refused = respond(anonymous, forge(body))
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "invalid_signature"
    assert status_of(api, cid) == "pending"
    assert respond(anonymous, body).json()["status"] == "approved"  # the genuine one still works


@pytest.mark.parametrize("skew", [-61, 61])
def test_an_answer_with_a_timestamp_outside_a_minute_is_refused(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock, skew: int
) -> None:
    user_id, device = with_device(api)
    challenge = sent(api, fake_fcm, user_id)
    body = device.answer(
        challenge["challenge_id"],
        "approve",
        number=challenge["number_match"],
        timestamp=int(clock.now()) + skew,
    )
    refused = respond(anonymous, body)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_signature"
    assert status_of(api, challenge["challenge_id"]) == "pending"


def test_an_answer_to_an_unknown_challenge_reveals_nothing(
    api: httpx.Client, anonymous: httpx.Client, clock: FrozenClock
) -> None:
    _, device = with_device(api)
    body = device.answer("00" + "A" * 29, "approve", number="12", timestamp=int(clock.now()))
    refused = respond(anonymous, body)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_signature"


# --- fatigue ---------------------------------------------------------------------------------


def test_at_most_three_pushes_wait_at_once(api: httpx.Client) -> None:
    user_id, _ = with_device(api)
    for _ in range(3):
        push_challenge(api, user_id)
    refused = api.post("/v1/challenges", json={"user_id": user_id, "factor": "push"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 120


def test_at_most_ten_pushes_an_hour(
    api: httpx.Client, anonymous: httpx.Client, fake_fcm: FakeFcm, clock: FrozenClock
) -> None:
    user_id, device = with_device(api)
    for n in range(10):
        cid = push_challenge(api, user_id)["challenge_id"]
        fake_fcm.wait_for(n + 1)
        assert (
            respond(anonymous, device.answer(cid, "deny", timestamp=int(clock.now()))).status_code
            == 200
        )
    refused = api.post("/v1/challenges", json={"user_id": user_id, "factor": "push"})
    assert refused.status_code == 429
    assert "phone" in refused.json()["error"]["message"]  # the push limit, not the login limit
    clock.advance(3601)
    assert push_challenge(api, user_id)["status"] == "pending"


# --- the login page learns the answer ----------------------------------------------------------


def test_a_long_poll_is_woken_by_the_answer_not_by_its_wait_running_out(
    api: httpx.Client,
    anonymous: httpx.Client,
    api_server: ApiServer,
    fake_fcm: FakeFcm,
    clock: FrozenClock,
) -> None:
    user_id, device = with_device(api)
    challenge = sent(api, fake_fcm, user_id)
    cid = challenge["challenge_id"]
    result: dict[str, Any] = {}

    def poll() -> None:
        with httpx.Client(base_url=api_server.url, headers=api.headers, timeout=35) as client:
            answer = client.get(f"/v1/challenges/{cid}", params={"wait": 20})
            result["status"] = answer.json()["status"]

    waiter = threading.Thread(target=poll)
    waiter.start()
    wait_until(lambda: api_server.waiters() >= 1)
    body = device.answer(
        cid, "approve", number=challenge["number_match"], timestamp=int(clock.now())
    )
    assert respond(anonymous, body).status_code == 200
    # Half the 20 s wait: a poll that only returned when its wait ran out would still be
    # held. How fast the wake-up is, is bench.push's figure, not a test's.
    waiter.join(10)
    assert not waiter.is_alive()
    assert result["status"] == "approved"
