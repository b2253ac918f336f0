"""The whole login path over real HTTP: API → Redis → Celery worker → fake Twilio → verify."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

import pyotp
import pytest

from tests.fixtures.pipeline import GROW_KEY, new_user_id, wait_until

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.bootstrap import Container
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio

pytestmark = pytest.mark.usefixtures("worker")

PHONE = "+1 201 555 0123"
PHONE_E164 = "+12015550123"


def last_code(fake: FakeTwilio, count: int) -> str:
    """The code in the `count`-th SMS the fake provider accepted (waiting for it to arrive)."""
    messages = fake.wait_for_messages(count, timeout=10)
    found = re.search(r"\b(\d{6})\b", messages[count - 1]["Body"])
    assert found is not None
    return found.group(1)


def create_user(api: httpx.Client) -> str:
    user_id = new_user_id()
    assert api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-1"}).status_code == 200
    return user_id


def enroll_totp(api: httpx.Client, clock: FrozenClock, user_id: str) -> pyotp.TOTP:
    created = api.post(f"/v1/users/{user_id}/factors/totp")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "pending"
    assert body["qr_svg"].startswith("<svg")
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(body["secret"])
    activated = api.post(
        f"/v1/users/{user_id}/factors/{body['factor_id']}/activate",
        json={"code": totp.at(clock.now())},
    )
    assert activated.status_code == 200, activated.text
    assert activated.json()["status"] == "active"
    clock.advance(30)  # the activation code's step is spent; logins use the next one
    return totp


def enroll_sms(api: httpx.Client, fake: FakeTwilio, user_id: str) -> str:
    sent_before = len(fake.messages)
    created = api.post(f"/v1/users/{user_id}/factors/sms", json={"phone": PHONE})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["phone_e164"] == PHONE_E164
    code = last_code(fake, sent_before + 1)
    activated = api.post(
        f"/v1/users/{user_id}/factors/{body['factor_id']}/activate", json={"code": code}
    )
    assert activated.status_code == 200, activated.text
    return str(body["factor_id"])


def test_a_user_enrolls_totp_and_logs_in_with_a_code(api: httpx.Client, clock: FrozenClock) -> None:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    assert api.get(f"/v1/users/{user_id}").json()["mfa_enabled"] is True

    challenge = api.post("/v1/challenges", json={"user_id": user_id, "factor": "auto"})
    assert challenge.status_code == 201
    assert challenge.json()["factor"] == "totp"
    verified = api.post(
        f"/v1/challenges/{challenge.json()['challenge_id']}/verify",
        json={"code": totp.at(clock.now())},
    )
    assert verified.status_code == 200
    assert verified.json()["status"] == "verified"


def test_a_totp_code_sent_with_the_challenge_is_checked_in_one_round_trip(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    answer = api.post(
        "/v1/challenges",
        json={"user_id": user_id, "factor": "totp", "code": totp.at(clock.now())},
    )
    assert answer.status_code == 201
    assert answer.json()["status"] == "verified"


def test_a_totp_code_cannot_be_replayed_on_another_challenge(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    code = totp.at(clock.now())
    first = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": code})
    assert first.json()["status"] == "verified"
    again = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": code})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_code"
    assert again.json()["error"]["reason"] == "replayed"


def test_the_code_that_activated_the_factor_cannot_log_in(
    api: httpx.Client, clock: FrozenClock
) -> None:
    """A code shoulder-surfed during enrollment is spent there, in the same step."""
    user_id = create_user(api)
    created = api.post(f"/v1/users/{user_id}/factors/totp").json()
    totp = pyotp.TOTP(created["secret"])
    code = totp.at(clock.now())
    activated = api.post(
        f"/v1/users/{user_id}/factors/{created['factor_id']}/activate", json={"code": code}
    )
    assert activated.status_code == 200, activated.text
    login = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": code})
    assert login.status_code == 400
    assert login.json()["error"]["reason"] == "replayed"
    assert "challenge_id" in login.json()["error"]  # the miss is kept, and counts


def test_an_older_steps_code_after_a_newer_one_is_refused(
    api: httpx.Client, clock: FrozenClock
) -> None:
    """Both codes are inside the ±1 step window, but only a step above the last one counts."""
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    clock.advance(60)  # the step before this one was never used: only the order refuses it
    now = clock.now()
    newer = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": totp.at(now)}
    )
    assert newer.json()["status"] == "verified"
    older = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": totp.at(now - 30)}
    )
    assert older.status_code == 400
    assert older.json()["error"]["reason"] == "replayed"


def test_a_code_from_a_far_step_is_refused_with_a_clock_skew_hint(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    challenge = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()
    skewed = totp.at(clock.now() - 5 * 30)
    answer = api.post(f"/v1/challenges/{challenge['challenge_id']}/verify", json={"code": skewed})
    assert answer.status_code == 400
    assert answer.json()["error"]["reason"] == "clock_skew"
    assert answer.json()["error"]["attempts_remaining"] == 4


def test_an_sms_code_reaches_the_phone_through_twilio_and_verifies(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    challenge = api.post(
        "/v1/challenges",
        json={"user_id": user_id, "factor": "sms", "context": {"ip": "198.51.100.7"}},
    )
    assert challenge.status_code == 201
    challenge_id = challenge.json()["challenge_id"]
    code = last_code(fake_twilio, 2)
    assert fake_twilio.messages[1]["To"] == PHONE_E164

    state = wait_until(
        lambda: (
            (s := api.get(f"/v1/challenges/{challenge_id}").json())["delivery"]["status"] == "sent"
            and s
        )
    )
    assert state["delivery"]["provider_id"].startswith("SM")
    verified = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code})
    assert verified.status_code == 200


def test_two_concurrent_verifies_of_one_code_let_exactly_one_win(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    challenge_id = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"}).json()[
        "challenge_id"
    ]
    code = last_code(fake_twilio, 2)
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def verify() -> None:
        barrier.wait()
        statuses.append(
            api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code}).status_code
        )

    threads = [threading.Thread(target=verify) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * 7


def test_five_wrong_codes_lock_the_challenge(api: httpx.Client, clock: FrozenClock) -> None:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    challenge_id = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()[
        "challenge_id"
    ]
    wrong = f"{(int(totp.at(clock.now())) + 1) % 1_000_000:06d}"
    remaining = [
        api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": wrong}).json()["error"]
        for _ in range(4)
    ]
    assert [e["attempts_remaining"] for e in remaining] == [4, 3, 2, 1]
    fifth = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": wrong})
    assert fifth.status_code == 429
    assert fifth.json()["error"]["code"] == "too_many_attempts"
    right = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": totp.at(clock.now())})
    assert right.status_code == 429
    assert api.get(f"/v1/challenges/{challenge_id}").json()["status"] == "locked"


def test_an_expired_challenge_is_swept_reads_expired_and_refuses_codes(
    api: httpx.Client, clock: FrozenClock, container: Container, celery_app: object
) -> None:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    challenge_id = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()[
        "challenge_id"
    ]
    clock.advance(container.settings.challenge_ttl_seconds + 1)
    celery_app.send_task("mfa.sweep_expired", queue="sweeps")  # type: ignore[attr-defined]
    wait_until(
        lambda: (
            container.redis.hget(container.ports.store.keys.challenge(challenge_id), "status")
            == "expired"
        )
    )  # type: ignore[attr-defined]
    assert api.get(f"/v1/challenges/{challenge_id}").json()["status"] == "expired"
    late = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": totp.at(clock.now())})
    assert late.status_code == 410
    assert late.json()["error"]["code"] == "challenge_expired"


def test_a_provider_error_500_is_retried_and_the_code_still_arrives(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    fake_twilio.fail_next(1, status=500)
    challenge_id = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"}).json()[
        "challenge_id"
    ]
    code = last_code(fake_twilio, 2)
    state = wait_until(
        lambda: (
            (s := api.get(f"/v1/challenges/{challenge_id}").json())["delivery"]["status"] == "sent"
            and s
        )
    )
    assert state["delivery"]["attempts"] == 2
    assert api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code}).status_code == 200


def test_a_permanent_provider_error_fails_the_challenge(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    fake_twilio.fail_next(
        1, status=400, code=21211, message="The 'To' number is not a valid phone number."
    )
    challenge_id = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"}).json()[
        "challenge_id"
    ]
    state = wait_until(
        lambda: (s := api.get(f"/v1/challenges/{challenge_id}").json())["status"] == "failed" and s
    )
    assert state["delivery"] == state["delivery"] | {"status": "failed", "error_code": "21211"}
    assert len(fake_twilio.messages) == 1  # only the enrollment code ever went out


def test_a_long_poll_returns_when_the_challenge_is_verified(
    api: httpx.Client, api_server: object, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    challenge_id = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()[
        "challenge_id"
    ]
    result: dict[str, object] = {}

    def poll() -> None:
        result["answer"] = api.get(f"/v1/challenges/{challenge_id}", params={"wait": 20}).json()

    poller = threading.Thread(target=poll)
    poller.start()
    wait_until(lambda: api_server.waiters() > 0)  # type: ignore[attr-defined]
    assert (
        api.post(
            f"/v1/challenges/{challenge_id}/verify", json={"code": totp.at(clock.now())}
        ).status_code
        == 200
    )
    poller.join(10)
    assert not poller.is_alive()
    assert result["answer"]["status"] == "verified"  # type: ignore[index]


def test_a_resend_sends_a_fresh_code_and_the_old_one_dies(
    api: httpx.Client, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    challenge_id = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"}).json()[
        "challenge_id"
    ]
    old = last_code(fake_twilio, 2)
    too_soon = api.post(f"/v1/challenges/{challenge_id}/resend")
    assert too_soon.status_code == 429
    assert int(too_soon.headers["Retry-After"]) >= 1
    clock.advance(31)
    assert api.post(f"/v1/challenges/{challenge_id}/resend").status_code == 202
    new = last_code(fake_twilio, 3)
    if new != old:
        refused = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": old})
        assert refused.status_code == 400
    assert api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": new}).status_code == 200


def test_an_application_sees_a_user_enrolled_through_another(
    api: httpx.Client, api_server: object, clock: FrozenClock
) -> None:
    import httpx  # noqa: PLC0415

    user_id = create_user(api)
    enroll_totp(api, clock, user_id)
    with httpx.Client(
        base_url=api_server.url,
        headers={"Authorization": f"Bearer {GROW_KEY}"},  # type: ignore[attr-defined]
    ) as grow:
        assert grow.get(f"/v1/users/{user_id}").json()["mfa_enabled"] is True
