"""The account-wide failure budget over real HTTP (NIST SP 800-63B rev. 4 §3.2.2).

A password holder guesses codes across many challenges: the guesses slow down after the free
ones, and at 100 consecutive failures TOTP and SMS lock until a push, a backup code or an
administrator's reset. The per-challenge and per-window limits are raised here so that only
the budget stands between the guesser and the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mfa_pipeline.cli.device import SimulatedDevice
from tests.e2e.test_admin_reset_and_audit import make_admin, make_user, trail, wrong_code
from tests.e2e.test_login_flows import enroll_sms, enroll_totp
from tests.e2e.test_webauthn import challenge, register, verify
from tests.fakes.soft_authenticator import SoftAuthenticator

if TYPE_CHECKING:
    import httpx
    import pyotp

    from mfa_pipeline.bootstrap import Container
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio

LIMIT = 100
FREE = 20


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "limit_challenges_per_user": "10000/600",
        "limit_verifications_per_user": "10000/600",
    }


def guess(api: httpx.Client, user_id: str, code: str) -> httpx.Response:
    """One TOTP guess in one round trip: a fresh challenge per guess, as an attacker would."""
    return api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": code})


def spend(api: httpx.Client, clock: FrozenClock, user_id: str, totp: pyotp.TOTP, n: int) -> None:
    """`n` wrong codes in a row, each waiting out the slow-down first (a patient attacker)."""
    for _ in range(n):
        answer = guess(api, user_id, wrong_code(totp, clock))
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_code"
        clock.advance(61)


def metric(api: httpx.Client, action: str) -> float:
    prefix = f'mfa_factor_locks_total{{action="{action}"}} '
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


def assert_locked(
    api: httpx.Client,
    clock: FrozenClock,
    user_id: str,
    totp: pyotp.TOTP,
    factors: tuple[str, ...] = ("totp", "auto"),
) -> None:
    user = api.get(f"/v1/users/{user_id}").json()
    assert user["locked_until"] is not None
    for factor in factors:
        refused = api.post("/v1/challenges", json={"user_id": user_id, "factor": factor})
        assert refused.status_code == 423, refused.text
        assert refused.json()["error"]["code"] == "factor_locked"
    # Even the right code: the lock is what stops the 101st guess being the lucky one.
    right = guess(api, user_id, totp.at(clock.now()))
    assert right.status_code == 423, right.text


@pytest.mark.usefixtures("worker")
def test_a_hundred_wrong_codes_across_challenges_lock_totp_and_sms_until_a_backup_code(
    api: httpx.Client, clock: FrozenClock, fake_twilio: FakeTwilio
) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    enroll_sms(api, fake_twilio, user_id)
    codes = api.post(f"/v1/users/{user_id}/backup-codes").json()["codes"]
    locked_before = metric(api, "locked")

    spend(api, clock, user_id, totp, LIMIT - 1)
    assert api.get(f"/v1/users/{user_id}").json()["locked_until"] is None
    pending = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()
    spend(api, clock, user_id, totp, 1)

    assert_locked(api, clock, user_id, totp, ("totp", "sms", "auto"))
    # A TOTP challenge issued before the lock cannot be answered after it either.
    late = api.post(
        f"/v1/challenges/{pending['challenge_id']}/verify", json={"code": totp.at(clock.now())}
    )
    assert late.status_code == 423, late.text
    assert metric(api, "locked") == locked_before + 1
    (locked,) = [e for e in trail(api, user_id) if e["event"] == "factors_locked"]
    assert locked["details"]["failures"] == LIMIT

    # A backup code still works, and lifts the lock.
    lifted_before = metric(api, "lifted")
    login = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "backup_code", "code": codes[0]}
    )
    assert login.status_code == 201, login.text
    assert login.json()["status"] == "verified"
    assert api.get(f"/v1/users/{user_id}").json()["locked_until"] is None
    assert metric(api, "lifted") == lifted_before + 1
    (unlocked,) = [e for e in trail(api, user_id) if e["event"] == "factors_unlocked"]
    assert unlocked["outcome"] == "strong_login"
    assert guess(api, user_id, totp.at(clock.now())).json()["status"] == "verified"


def test_a_push_approval_lifts_the_lock(
    api: httpx.Client, anonymous: httpx.Client, clock: FrozenClock
) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    device = SimulatedDevice.generate()
    device.register(api, user_id)
    spend(api, clock, user_id, totp, LIMIT)
    assert_locked(api, clock, user_id, totp, ("totp",))
    auto = api.post("/v1/challenges", json={"user_id": user_id, "factor": "auto"})
    assert auto.json()["factor"] == "push"

    push = api.post("/v1/challenges", json={"user_id": user_id, "factor": "push"})
    assert push.status_code == 201, push.text  # push keeps working under the lock
    body = device.answer(
        push.json()["challenge_id"],
        "approve",
        number=push.json()["number_match"],
        timestamp=int(clock.now()),
    )
    assert anonymous.post("/v1/push/responses", json=body).json()["status"] == "approved"
    assert api.get(f"/v1/users/{user_id}").json()["locked_until"] is None
    assert guess(api, user_id, totp.at(clock.now())).json()["status"] == "verified"


def test_a_passkey_login_lifts_the_lock(api: httpx.Client, clock: FrozenClock) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    key = SoftAuthenticator()
    register(api, user_id, key)
    spend(api, clock, user_id, totp, LIMIT)
    assert_locked(api, clock, user_id, totp, ("totp",))
    started = challenge(api, user_id)  # WebAuthn is never locked
    answer = verify(api, started["challenge_id"], key.get(started["public_key"]))
    assert answer.json()["status"] == "verified", answer.text
    assert api.get(f"/v1/users/{user_id}").json()["locked_until"] is None
    (unlocked,) = [e for e in trail(api, user_id) if e["event"] == "factors_unlocked"]
    assert unlocked["outcome"] == "strong_login"
    assert guess(api, user_id, totp.at(clock.now())).json()["status"] == "verified"


def test_a_lock_that_falls_during_a_passkey_ceremony_is_lifted_by_it(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    key = SoftAuthenticator()
    register(api, user_id, key)
    spend(api, clock, user_id, totp, LIMIT - 1)
    started = challenge(api, user_id)  # one failure short of the lock
    assert guess(api, user_id, wrong_code(totp, clock)).status_code == 400
    assert_locked(api, clock, user_id, totp, ("totp",))
    answer = verify(api, started["challenge_id"], key.get(started["public_key"]))
    assert answer.json()["status"] == "verified", answer.text
    assert api.get(f"/v1/users/{user_id}").json()["locked_until"] is None


def test_a_passkey_login_starts_the_count_again(api: httpx.Client, clock: FrozenClock) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    key = SoftAuthenticator()
    register(api, user_id, key)
    spend(api, clock, user_id, totp, FREE + 3)
    started = challenge(api, user_id)
    answer = verify(api, started["challenge_id"], key.get(started["public_key"]))
    assert answer.json()["status"] == "verified", answer.text
    # The count restarted: wrong codes are free again, and the right one passes at once.
    for _ in range(3):
        assert guess(api, user_id, wrong_code(totp, clock)).status_code == 400
    assert guess(api, user_id, totp.at(clock.now())).json()["status"] == "verified"


def test_an_administrators_reset_lifts_the_lock(api: httpx.Client, clock: FrozenClock) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    spend(api, clock, user_id, totp, LIMIT)
    assert_locked(api, clock, user_id, totp)
    reset = api.delete(f"/v1/users/{user_id}/mfa", params={"actor_id": admin_id})
    assert reset.status_code == 200, reset.text
    assert api.get(f"/v1/users/{user_id}").json()["locked_until"] is None
    unlocked = next(e for e in trail(api, user_id) if e["event"] == "factors_unlocked")
    assert (unlocked["outcome"], unlocked["actor_id"]) == ("mfa_reset", admin_id)
    # The user enrolls again and logs in with the new authenticator.
    again = enroll_totp(api, clock, user_id)
    assert guess(api, user_id, again.at(clock.now())).json()["status"] == "verified"


def test_wrong_codes_slow_down_before_the_lock_and_a_refused_try_uses_no_attempt(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    for _ in range(FREE - 1):  # typos cost no wait
        assert guess(api, user_id, wrong_code(totp, clock)).status_code == 400
    challenge = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()
    path = f"/v1/challenges/{challenge['challenge_id']}/verify"
    assert api.post(path, json={"code": wrong_code(totp, clock)}).status_code == 400
    slowed = api.post(path, json={"code": totp.at(clock.now())})
    assert slowed.status_code == 429, slowed.text
    assert slowed.json()["error"]["code"] == "rate_limited"
    assert slowed.headers["Retry-After"] == "1"
    assert api.get(f"/v1/challenges/{challenge['challenge_id']}").json()["attempts_remaining"] == 4
    clock.advance(1)
    assert api.post(path, json={"code": totp.at(clock.now())}).json()["status"] == "verified"


def test_malformed_codes_never_count_against_the_budget(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    for bad in ("12345", "1234567", "abcdef", "١٢٣٤٥٦") * 40:
        refused = guess(api, user_id, bad)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_code"
    assert api.get(f"/v1/users/{user_id}").json()["locked_until"] is None
    assert guess(api, user_id, totp.at(clock.now())).json()["status"] == "verified"


def test_a_success_starts_the_count_again(
    api: httpx.Client, clock: FrozenClock, container: Container
) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    spend(api, clock, user_id, totp, LIMIT - 10)
    assert guess(api, user_id, totp.at(clock.now())).json()["status"] == "verified"
    clock.advance(30)
    assert guess(api, user_id, wrong_code(totp, clock)).status_code == 400  # no wait: count 1
    spend(api, clock, user_id, totp, LIMIT - 10)
    user = container.ports.factors.get_user(user_id)
    assert user is not None
    assert user.locked_until is None
