""" "Keep me logged in for a week" over real HTTP: issue, preauth allow, expiry, revocation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from tests.e2e.test_login_flows import create_user, enroll_totp

if TYPE_CHECKING:
    import httpx
    import pyotp

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.config import Settings
    from tests.doubles.clock import FrozenClock

pytestmark = pytest.mark.usefixtures("worker")

WEEK = 7 * 24 * 3600


def remembered_login(api: httpx.Client, clock: FrozenClock) -> tuple[str, pyotp.TOTP, str]:
    """A user with TOTP who logs in with "keep me logged in"; returns (user, totp, token)."""
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"})
    verified = api.post(
        f"/v1/challenges/{created.json()['challenge_id']}/verify",
        json={"code": totp.at(clock.now()), "remember_device": True},
    )
    assert verified.status_code == 200, verified.text
    body = verified.json()
    until = datetime.strptime(body["trusted_until"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(until.timestamp() - (clock.now() + WEEK)) < 2
    clock.advance(30)  # the next login needs the next TOTP step
    return user_id, totp, str(body["trusted_token"])


def preauth(api: httpx.Client, user_id: str, token: str | None) -> str:
    answer = api.post("/v1/preauth", json={"user_id": user_id, "trusted_token": token})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["result"])


def test_a_remembered_login_returns_a_token_that_preauth_allows(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id, _, token = remembered_login(api, clock)
    assert len(token) >= 43  # 256 bits, base64url
    assert preauth(api, user_id, token) == "allow"
    assert preauth(api, user_id, None) == "auth"


def test_a_login_without_remember_device_gets_no_token(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    answer = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": totp.at(clock.now())}
    )
    assert answer.json()["status"] == "verified"
    assert answer.json()["trusted_token"] is None


def test_the_one_round_trip_login_can_remember_the_device(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    answer = api.post(
        "/v1/challenges",
        json={
            "user_id": user_id,
            "factor": "totp",
            "code": totp.at(clock.now()),
            "remember_device": True,
        },
    )
    assert answer.status_code == 201
    assert answer.json()["status"] == "verified"
    assert preauth(api, user_id, answer.json()["trusted_token"]) == "allow"


def test_a_forged_token_or_another_users_token_is_not_allowed(
    api: httpx.Client, clock: FrozenClock
) -> None:
    alice, _, alice_token = remembered_login(api, clock)
    bob, _, bob_token = remembered_login(api, clock)
    assert preauth(api, alice, bob_token) == "auth"
    assert preauth(api, bob, alice_token) == "auth"
    assert preauth(api, alice, alice_token[:-2] + "xx") == "auth"
    assert preauth(api, alice, "x" * 256) == "auth"
    assert preauth(api, alice, "") == "auth"


def test_a_token_expires_after_a_week(api: httpx.Client, clock: FrozenClock) -> None:
    user_id, _, token = remembered_login(api, clock)
    clock.advance(WEEK - 60)
    assert preauth(api, user_id, token) == "allow"
    clock.advance(61)
    assert preauth(api, user_id, token) == "auth"


def test_revoking_trusted_sessions_ends_every_token(
    api: httpx.Client, clock: FrozenClock, container: Container
) -> None:
    user_id, totp, first = remembered_login(api, clock)
    second = api.post(
        "/v1/challenges",
        json={
            "user_id": user_id,
            "factor": "totp",
            "code": totp.at(clock.now()),
            "remember_device": True,
        },
    ).json()["trusted_token"]
    # A second later, so the trail (newest event first) cannot tie the revocation with the
    # logins, whose rows the batching auditor may write after it.
    clock.advance(1)
    revoked = api.delete(f"/v1/users/{user_id}/trusted-sessions")
    assert revoked.status_code == 204
    assert preauth(api, user_id, first) == "auth"
    assert preauth(api, user_id, second) == "auth"
    events = [e.event for e in container.ports.audit_log.for_user(user_id)]
    assert events.count("trusted_session_issued") == 2
    assert events[0] == "trusted_sessions_revoked"
    assert api.delete("/v1/users/nobody-here/trusted-sessions").status_code == 404


def test_removing_a_factor_revokes_trusted_sessions(api: httpx.Client, clock: FrozenClock) -> None:
    user_id, _, token = remembered_login(api, clock)
    factor_id = api.get(f"/v1/users/{user_id}/factors").json()[0]["factor_id"]
    assert api.delete(f"/v1/users/{user_id}/factors/{factor_id}").status_code == 204
    assert preauth(api, user_id, token) != "allow"


def test_only_the_sha256_of_a_token_is_stored_with_its_user_and_application(
    api: httpx.Client, clock: FrozenClock, settings: Settings
) -> None:
    user_id, _, token = remembered_login(api, clock)
    engine = sa.create_engine(settings.effective_database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT * FROM trusted_sessions WHERE user_id = :u"), {"u": user_id}
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    row = rows[0]._mapping
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["application"] == "manage"
    assert token not in repr(rows)
