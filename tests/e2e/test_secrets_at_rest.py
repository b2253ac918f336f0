"""Secrets at rest over real HTTP: a ciphertext moved to another row does not decrypt, the
failure is a clear error (never a 500), and no key, secret or code reaches the logs."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pyotp
import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from tests.fixtures.pipeline import new_user_id

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.config import Settings
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio


def enroll_totp(api: httpx.Client, clock: FrozenClock) -> tuple[str, str, pyotp.TOTP]:
    user_id = new_user_id()
    api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
    body = api.post(f"/v1/users/{user_id}/factors/totp").json()
    totp = pyotp.TOTP(body["secret"])
    activated = api.post(
        f"/v1/users/{user_id}/factors/{body['factor_id']}/activate",
        json={"code": totp.at(clock.now())},
    )
    assert activated.status_code == 200
    return user_id, body["factor_id"], totp


def copy_column(settings: Settings, column: str, source: str, target: str) -> None:
    """What an attacker with write access to the database would do: move a ciphertext."""
    engine = sa.create_engine(settings.effective_database_url)
    with engine.begin() as conn:
        value = conn.execute(
            sa.text(f"SELECT {column} FROM factors WHERE factor_id = :f"),  # noqa: S608 - test
            {"f": source},
        ).scalar_one()
        conn.execute(
            sa.text(f"UPDATE factors SET {column} = :v WHERE factor_id = :f"),  # noqa: S608
            {"v": value, "f": target},
        )
    engine.dispose()


def test_a_totp_secret_moved_to_another_users_row_does_not_decrypt_and_fails_clearly(
    api: httpx.Client, clock: FrozenClock, settings: Settings
) -> None:
    alice, alice_factor, alice_totp = enroll_totp(api, clock)
    mallory, mallory_factor, _ = enroll_totp(api, clock)
    copy_column(settings, "secret_ciphertext", alice_factor, mallory_factor)
    clock.advance(30)
    with capture_logs() as logs:
        answer = api.post(
            "/v1/challenges",
            json={"user_id": mallory, "factor": "totp", "code": alice_totp.at(clock.now())},
        )
    assert answer.status_code == 503
    assert answer.json()["error"] == {
        "code": "unavailable",
        "message": answer.json()["error"]["message"],
        "reason": "secret_unreadable",
    }
    assert "Traceback" not in answer.text
    assert [e["event"] for e in logs].count("secret_unreadable") == 1
    # Alice's own secret still works on her own row.
    mine = api.post(
        "/v1/challenges",
        json={"user_id": alice, "factor": "totp", "code": alice_totp.at(clock.now())},
    )
    assert mine.json()["status"] == "verified"


@pytest.mark.usefixtures("worker")
def test_a_phone_number_moved_to_another_users_row_gets_no_sms(
    api: httpx.Client, fake_twilio: FakeTwilio, settings: Settings
) -> None:
    factors = []
    for phone in ("+12015550123", "+12025550188"):
        user_id = new_user_id()
        api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
        created = api.post(f"/v1/users/{user_id}/factors/sms", json={"phone": phone}).json()
        body = fake_twilio.wait_for_messages(len(factors) + 1)[-1]["Body"]
        code = re.search(r"\b(\d{6})\b", body)
        assert code is not None
        api.post(
            f"/v1/users/{user_id}/factors/{created['factor_id']}/activate",
            json={"code": code.group(1)},
        )
        factors.append((user_id, created["factor_id"]))
    (_, victim_factor), (mallory, mallory_factor) = factors
    copy_column(settings, "phone_ciphertext", victim_factor, mallory_factor)
    answer = api.post("/v1/challenges", json={"user_id": mallory, "factor": "sms"})
    assert answer.status_code == 503
    assert answer.json()["error"]["reason"] == "secret_unreadable"
    assert len(fake_twilio.messages) == 2


def test_no_key_secret_or_code_reaches_the_logs_or_the_error_answers(
    api: httpx.Client, clock: FrozenClock, settings: Settings
) -> None:
    with capture_logs() as logs:
        user_id, _, totp = enroll_totp(api, clock)
        clock.advance(30)
        challenge = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()
        wrong = api.post(
            f"/v1/challenges/{challenge['challenge_id']}/verify", json={"code": "000000"}
        )
        right = totp.at(clock.now())
        api.post(f"/v1/challenges/{challenge['challenge_id']}/verify", json={"code": right})
    text = json.dumps(logs, default=str)
    assert wrong.status_code == 400
    for secret in (*settings.encryption_keys, totp.secret, right, *settings.api_keys):
        assert secret not in text
        assert secret not in wrong.text
    assert "secret" not in {k for entry in logs for k in entry}
