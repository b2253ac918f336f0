"""An administrator's reset, two applications sharing one MFA state, and the audit trail."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pyotp
import pytest
import sqlalchemy as sa

from tests.e2e.test_login_flows import PHONE, PHONE_E164, enroll_sms, enroll_totp, last_code
from tests.fixtures.pipeline import new_user_id, wait_until

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.config import Settings
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio

pytestmark = pytest.mark.usefixtures("worker")

FIRM = "firm-reset"


def make_user(api: httpx.Client, firm_id: str = FIRM, role: str = "member") -> str:
    user_id = new_user_id()
    put = api.put(f"/v1/users/{user_id}", json={"firm_id": firm_id, "role": role})
    assert put.status_code == 200, put.text
    return user_id


def make_admin(api: httpx.Client, clock: FrozenClock, firm_id: str = FIRM) -> str:
    """An administrator of the firm with MFA enabled: who may reset a colleague's MFA."""
    admin_id = make_user(api, firm_id, role="admin")
    enroll_totp(api, clock, admin_id)
    return admin_id


def trail(api: httpx.Client, user_id: str, **params: Any) -> list[dict[str, Any]]:
    answer = api.get(f"/v1/users/{user_id}/audit", params=params)
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def login_remembered(api: httpx.Client, clock: FrozenClock, user_id: str, totp: pyotp.TOTP) -> str:
    created = api.post(
        "/v1/challenges",
        json={
            "user_id": user_id,
            "factor": "totp",
            "code": totp.at(clock.now()),
            "remember_device": True,
        },
    )
    assert created.status_code == 201, created.text
    clock.advance(30)
    return str(created.json()["trusted_token"])


def wrong_code(totp: pyotp.TOTP, clock: FrozenClock) -> str:
    near = {totp.at(clock.now() + 30 * k) for k in range(-10, 11)}
    return next(c for c in ("000000", "111111", "222222") if c not in near)


def test_a_reset_removes_factors_codes_and_sessions_and_keeps_the_audit_trail(
    api: httpx.Client, clock: FrozenClock, fake_twilio: FakeTwilio
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    enroll_sms(api, fake_twilio, user_id)
    assert api.post(f"/v1/users/{user_id}/backup-codes").status_code == 201
    token = login_remembered(api, clock, user_id, totp)
    assert api.post("/v1/preauth", json={"user_id": user_id, "trusted_token": token}).json()[
        "result"
    ] == ("allow")
    before = trail(api, user_id)

    reset = api.delete(f"/v1/users/{user_id}/mfa", params={"actor_id": admin_id})
    assert reset.status_code == 200, reset.text
    assert reset.json() == {
        "user_id": user_id,
        "factors_removed": 2,
        "backup_codes_removed": 10,
        "trusted_sessions_revoked": 1,
    }

    user = api.get(f"/v1/users/{user_id}").json()
    assert user | {"mfa_enabled": False, "factors": [], "backup_codes_remaining": 0} == user
    after = api.post("/v1/preauth", json={"user_id": user_id, "trusted_token": token}).json()
    assert after == {"result": "bypass", "factors": []}
    assert api.post("/v1/challenges", json={"user_id": user_id}).status_code == 409

    events = trail(api, user_id)
    assert events[1:] == before  # nothing earlier was removed or changed
    newest = events[0]
    assert (
        newest
        | {
            "event": "mfa_reset",
            "actor_id": admin_id,
            "application": "manage",
            "outcome": "ok",
            "firm_id": FIRM,
        }
        == newest
    )
    assert newest["details"]["factors_removed"] == 2
    # A user can enroll again at once.
    enroll_totp(api, clock, user_id)


def test_a_reset_by_an_administrator_of_another_firm_is_forbidden_and_changes_nothing(
    api: httpx.Client, clock: FrozenClock
) -> None:
    outsider = make_admin(api, clock, firm_id="firm-other")
    user_id = make_user(api)
    enroll_totp(api, clock, user_id)
    refused = api.delete(f"/v1/users/{user_id}/mfa", params={"actor_id": outsider})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert api.get(f"/v1/users/{user_id}").json()["mfa_enabled"] is True
    assert all(e["event"] != "mfa_reset" for e in trail(api, user_id))


def test_an_sms_code_sent_before_a_reset_no_longer_verifies(
    api: httpx.Client, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    sms_factor = enroll_sms(api, fake_twilio, user_id)
    sent_before = len(fake_twilio.messages)
    created = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "sms", "factor_id": sms_factor}
    )
    assert created.status_code == 201, created.text
    code = last_code(fake_twilio, sent_before + 1)  # the phone (maybe stolen) has the code
    reset = api.delete(f"/v1/users/{user_id}/mfa", params={"actor_id": admin_id})
    assert reset.status_code == 200, reset.text

    challenge_id = created.json()["challenge_id"]
    refused = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "factor_not_enrolled"
    assert api.get(f"/v1/challenges/{challenge_id}").json()["status"] == "pending"


def test_a_reset_needs_an_actor_and_a_known_user(api: httpx.Client) -> None:
    admin_id = make_user(api)
    assert api.delete(f"/v1/users/{admin_id}/mfa").status_code == 422
    missing = api.delete("/v1/users/nobody-here/mfa", params={"actor_id": admin_id})
    assert missing.status_code == 404
    assert api.get("/v1/users/nobody-here/audit").status_code == 404


def test_a_user_enrolled_through_manage_is_enrolled_for_grow_and_the_trail_names_each(
    api: httpx.Client, grow: httpx.Client, clock: FrozenClock
) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)

    seen_by_grow = grow.get(f"/v1/users/{user_id}").json()
    assert seen_by_grow["mfa_enabled"] is True
    assert grow.post("/v1/preauth", json={"user_id": user_id}).json()["result"] == "auth"
    created = grow.post(
        "/v1/challenges",
        json={
            "user_id": user_id,
            "factor": "totp",
            "context": {"ip": "203.0.113.9", "user_agent": "Browser/1.0"},
        },
    )
    verified = grow.post(
        f"/v1/challenges/{created.json()['challenge_id']}/verify",
        json={"code": totp.at(clock.now())},
    )
    assert verified.status_code == 200, verified.text

    events = trail(api, user_id)
    by_event = {e["event"]: e for e in events}
    assert by_event["factor_enrolled"]["application"] == "manage"
    assert by_event["factor_activated"]["application"] == "manage"
    login = by_event["challenge_verified"]
    assert (
        login
        | {
            "application": "grow",
            "ip": "203.0.113.9",
            "user_agent": "Browser/1.0",
            "factor": "totp",
            "outcome": "verified",
            "challenge_id": created.json()["challenge_id"],
        }
        == login
    )


def test_the_trail_is_newest_first_and_paged_with_a_before_cursor(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = make_user(api)
    totp = enroll_totp(api, clock, user_id)
    for _ in range(3):
        created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"})
        api.post(
            f"/v1/challenges/{created.json()['challenge_id']}/verify",
            json={"code": wrong_code(totp, clock)},
        )
    everything = trail(api, user_id)
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)
    assert len(everything) == 5  # enrolled, activated, three failed codes

    first = api.get(f"/v1/users/{user_id}/audit", params={"limit": 2}).json()
    assert [e["id"] for e in first["events"]] == ids[:2]
    second = api.get(
        f"/v1/users/{user_id}/audit", params={"limit": 2, "before": first["next_before"]}
    ).json()
    assert [e["id"] for e in second["events"]] == ids[2:4]
    last = api.get(
        f"/v1/users/{user_id}/audit", params={"limit": 2, "before": second["next_before"]}
    ).json()
    assert [e["id"] for e in last["events"]] == ids[4:]
    assert last["next_before"] is None
    assert api.get(f"/v1/users/{user_id}/audit", params={"limit": 0}).status_code == 422


def test_every_outcome_is_audited_and_no_row_holds_a_code_secret_or_number(
    api: httpx.Client,
    clock: FrozenClock,
    fake_twilio: FakeTwilio,
    container: Container,
    settings: Settings,
) -> None:
    admin_id = make_user(api, role="admin")
    user_id = make_user(api)
    secrets_seen: set[str] = set()

    # Enrollment (TOTP: its secret; SMS: its number and code), activation.
    created = api.post(f"/v1/users/{user_id}/factors/totp").json()
    secrets_seen.add(created["secret"])
    totp = pyotp.TOTP(created["secret"])
    activation = totp.at(clock.now())
    secrets_seen.add(activation)
    api.post(
        f"/v1/users/{user_id}/factors/{created['factor_id']}/activate", json={"code": activation}
    )
    clock.advance(30)
    sms_factor = enroll_sms(api, fake_twilio, user_id)
    secrets_seen.add(last_code(fake_twilio, 1))

    # A verified login with "keep me logged in" (a token), backup codes.
    code = totp.at(clock.now())
    secrets_seen.add(code)
    token = api.post(
        "/v1/challenges",
        json={"user_id": user_id, "factor": "totp", "code": code, "remember_device": True},
    ).json()["trusted_token"]
    secrets_seen.add(token)
    clock.advance(30)
    backup = api.post(f"/v1/users/{user_id}/backup-codes").json()["codes"]
    secrets_seen.update(backup)
    secrets_seen.update(c.replace("-", "") for c in backup)
    used = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "backup_code", "code": backup[0]}
    )
    assert used.status_code == 201, used.text

    # A wrong code, then a lock.
    locked = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()
    for _ in range(5):
        api.post(
            f"/v1/challenges/{locked['challenge_id']}/verify",
            json={"code": wrong_code(totp, clock)},
        )
    assert api.get(f"/v1/challenges/{locked['challenge_id']}").json()["status"] == "locked"

    # An SMS the provider refuses for good.
    fake_twilio.fail_next(1, status=400, code=21211, message="The 'To' number is not valid.")
    failed = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "sms", "factor_id": sms_factor}
    ).json()
    wait_until(
        lambda: api.get(f"/v1/challenges/{failed['challenge_id']}").json()["status"] == "failed"
    )

    # A challenge left to expire, then swept.
    expiring = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()
    clock.advance(301)
    assert container.services.sweeps.sweep() >= 1

    # A factor removed, a reset, a policy change.
    assert api.delete(f"/v1/users/{user_id}/factors/{sms_factor}").status_code == 204
    enroll_totp(api, clock, admin_id)
    assert api.put(
        f"/v1/firms/{FIRM}/policy", json={"actor_id": admin_id, "require_mfa": True}
    ).status_code == (200)
    assert api.delete(f"/v1/users/{user_id}/mfa", params={"actor_id": admin_id}).status_code == 200

    events = trail(api, user_id, limit=200)
    seen = {(e["event"], e["outcome"]) for e in events}
    assert {
        ("factor_enrolled", "ok"),
        ("factor_activated", "ok"),
        ("factor_removed", "ok"),
        ("challenge_verified", "verified"),
        ("challenge_failed", "wrong_code"),
        ("challenge_locked", "locked"),
        ("delivery_failed", "failed"),
        ("challenge_expired", "expired"),
        ("mfa_reset", "ok"),
    } <= seen
    assert any(e["challenge_id"] == expiring["challenge_id"] for e in events)
    assert ("policy_changed", "ok") in {(e["event"], e["outcome"]) for e in trail(api, admin_id)}

    # Every row, every column, straight from the database.
    phone_forms = {PHONE_E164, PHONE_E164[1:], PHONE_E164[2:], PHONE, "201-555-0123", "5550123"}
    engine = sa.create_engine(settings.effective_database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_events")).mappings().all()
    engine.dispose()
    assert len(rows) >= len(events)
    for row in rows:
        for column, value in row.items():
            texts = _texts(column, value)
            for text in texts:
                for secret in secrets_seen | phone_forms:
                    assert secret not in text, f"{column} holds a secret or number"
                assert not re.search(r"\+\d{6,}", text), column


def _texts(column: str, value: object) -> list[str]:
    """The strings a cell could leak through: its text, or for JSON its keys and values."""
    if value is None:
        return []
    if isinstance(value, (int, float)):
        # A number cannot hold a base32 secret or a token; it could equal a six-digit code.
        return [str(int(value)).zfill(6)] if float(value) < 1_000_000 else []
    if column != "details":
        return [str(value)]
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                found.append(str(key))
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif node is not None:
            found.extend(_texts("", node))

    walk(json.loads(str(value)))
    return found
