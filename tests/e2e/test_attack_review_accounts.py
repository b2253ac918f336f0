"""Findings of the outside attack review about accounts, tried again over real HTTP.

Firm administrators as a role, users that keep their firm, login verification that refuses
enrollment challenges, signed push reasons, the audit's application and order (the hostile
input and SMS findings are in `test_attack_review.py`). Each test
makes the attack and checks that it fails and that nothing it targeted changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mfa_pipeline.cli.device import SimulatedDevice
from tests.e2e.test_admin_reset_and_audit import make_admin, make_user, trail
from tests.e2e.test_login_flows import PHONE, enroll_totp, last_code
from tests.fixtures.pipeline import new_user_id

if TYPE_CHECKING:
    import httpx

    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio

FIRM = "firm-acme"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Login outcomes wait in the audit batch long enough for a later reset to be written
    # first (a reader flushes the batch before reading).
    return {"audit_batch_seconds": 5.0, "limit_challenges_per_user": "100/600"}


def reset(api: httpx.Client, user_id: str, actor_id: str) -> httpx.Response:
    return api.delete(f"/v1/users/{user_id}/mfa", params={"actor_id": actor_id})


def assert_refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


# --- administrators ------------------------------------------------------------------------


def test_a_member_of_the_firm_with_mfa_cannot_reset_a_colleagues_mfa(
    api: httpx.Client, clock: FrozenClock
) -> None:
    member = make_user(api, FIRM)
    enroll_totp(api, clock, member)
    victim = make_user(api, FIRM)
    enroll_totp(api, clock, victim)
    refused = reset(api, victim, member)
    assert_refused(refused, 403, "forbidden")
    assert api.get(f"/v1/users/{victim}").json()["mfa_enabled"] is True
    assert all(e["event"] != "mfa_reset" for e in trail(api, victim))
    attempt = trail(api, member)[0]
    assert (attempt["event"], attempt["outcome"]) == ("mfa_reset", "forbidden")


def test_a_member_cannot_change_the_firms_policy(api: httpx.Client, clock: FrozenClock) -> None:
    member = make_user(api, FIRM)
    enroll_totp(api, clock, member)
    refused = api.put(f"/v1/firms/{FIRM}/policy", json={"actor_id": member, "require_mfa": True})
    assert_refused(refused, 403, "forbidden")
    assert api.get(f"/v1/firms/{FIRM}/policy").json()["require_mfa"] is False


def test_an_administrator_without_mfa_cannot_reset_anyone(
    api: httpx.Client, clock: FrozenClock
) -> None:
    admin = make_user(api, FIRM, role="admin")
    victim = make_user(api, FIRM)
    enroll_totp(api, clock, victim)
    refused = reset(api, victim, admin)
    assert_refused(refused, 409, "actor_mfa_required")
    assert api.get(f"/v1/users/{victim}").json()["mfa_enabled"] is True


def test_a_role_change_is_audited_and_makes_an_administrator(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = make_user(api, FIRM)
    enroll_totp(api, clock, user_id)
    victim = make_user(api, FIRM)
    assert reset(api, victim, user_id).status_code == 403
    promoted = api.put(f"/v1/users/{user_id}", json={"role": "admin"})
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["role"], promoted.json()["firm_id"]) == ("admin", FIRM)
    change = next(e for e in trail(api, user_id) if e["event"] == "user_role_changed")
    assert (
        change
        | {
            "event": "user_role_changed",
            "application": "manage",
            "details": {"previous": "member", "current": "admin"},
        }
        == change
    )
    assert reset(api, victim, user_id).status_code == 200


def test_an_unknown_role_is_an_invalid_request(api: httpx.Client) -> None:
    user_id = make_user(api, FIRM)
    refused = api.put(f"/v1/users/{user_id}", json={"role": "owner"})
    assert refused.status_code == 422
    assert "role" in refused.text
    assert api.get(f"/v1/users/{user_id}").json()["role"] == "member"


# --- users keep their firm -----------------------------------------------------------------


def test_a_put_without_firm_keeps_the_user_in_the_firm_and_under_its_policy(
    api: httpx.Client, clock: FrozenClock
) -> None:
    admin = make_admin(api, clock, FIRM)
    policy = api.put(f"/v1/firms/{FIRM}/policy", json={"actor_id": admin, "require_mfa": True})
    assert policy.status_code == 200, policy.text
    user_id = make_user(api, FIRM)
    assert api.post("/v1/preauth", json={"user_id": user_id}).json()["result"] == "enroll"
    again = api.put(f"/v1/users/{user_id}", json={})
    assert again.status_code == 200, again.text
    assert again.json()["firm_id"] == FIRM
    assert api.put(f"/v1/users/{user_id}", json={"firm_id": None}).json()["firm_id"] == FIRM
    assert api.post("/v1/preauth", json={"user_id": user_id}).json()["result"] == "enroll"
    assert all(e["event"] != "user_firm_changed" for e in trail(api, user_id))


def test_a_new_user_needs_a_firm(api: httpx.Client) -> None:
    user_id = new_user_id()
    refused = api.put(f"/v1/users/{user_id}", json={})
    assert refused.status_code == 422, refused.text
    assert (
        refused.json()["error"] | {"code": "invalid_request", "field": "firm_id"}
        == (refused.json()["error"])
    )
    assert api.get(f"/v1/users/{user_id}").status_code == 404


def test_a_move_to_another_firm_is_audited(api: httpx.Client) -> None:
    user_id = make_user(api, FIRM)
    moved = api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-other"})
    assert moved.json()["firm_id"] == "firm-other"
    change = trail(api, user_id)[0]
    assert (
        change
        | {
            "event": "user_firm_changed",
            "firm_id": "firm-other",
            "details": {"previous": FIRM, "current": "firm-other"},
        }
        == change
    )


# --- enrollment challenges -----------------------------------------------------------------


@pytest.mark.usefixtures("worker")
def test_an_enrollment_code_does_not_verify_as_a_login_and_still_activates(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = make_user(api, FIRM)
    sent_before = len(fake_twilio.messages)
    enrollment = api.post(f"/v1/users/{user_id}/factors/sms", json={"phone": PHONE}).json()
    code = last_code(fake_twilio, sent_before + 1)
    challenge_id = enrollment["challenge_id"]
    shown = api.get(f"/v1/challenges/{challenge_id}").json()
    assert shown["purpose"] == "enrollment"

    refused = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code})
    assert_refused(refused, 404, "not_found")
    assert "activate" in refused.json()["error"]["message"]
    assert api.get(f"/v1/challenges/{challenge_id}").json()["status"] == "pending"
    assert all(e["event"] != "challenge_verified" for e in trail(api, user_id))

    activated = api.post(
        f"/v1/users/{user_id}/factors/{enrollment['factor_id']}/activate", json={"code": code}
    )
    assert activated.status_code == 200, activated.text
    assert activated.json()["status"] == "active"


def test_a_login_challenge_shows_its_purpose(api: httpx.Client, clock: FrozenClock) -> None:
    user_id = make_user(api, FIRM)
    enroll_totp(api, clock, user_id)
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()
    assert created["purpose"] == "login"
    assert api.get(f"/v1/challenges/{created['challenge_id']}").json()["purpose"] == "login"


# --- push reasons are signed ---------------------------------------------------------------


def push_user(api: httpx.Client) -> tuple[str, SimulatedDevice]:
    user_id = make_user(api, FIRM)
    device = SimulatedDevice.generate()
    device.register(api, user_id)
    return user_id, device


def push(api: httpx.Client, user_id: str) -> httpx.Response:
    return api.post("/v1/challenges", json={"user_id": user_id, "factor": "push"})


def test_not_me_added_to_a_replayed_deny_is_refused_and_blocks_nothing(
    api: httpx.Client, anonymous: httpx.Client, clock: FrozenClock
) -> None:
    user_id, device = push_user(api)
    challenge_id = push(api, user_id).json()["challenge_id"]
    deny = device.answer(challenge_id, "deny", timestamp=int(clock.now()))
    assert anonymous.post("/v1/push/responses", json=deny).json()["status"] == "denied"

    replayed = anonymous.post("/v1/push/responses", json={**deny, "reason": "not_me"})
    assert_refused(replayed, 401, "invalid_signature")
    assert api.get(f"/v1/challenges/{challenge_id}").json()["fraud_reported"] is False
    assert push(api, user_id).status_code == 201  # the user's pushes are not blocked


def test_a_not_me_stripped_in_transit_is_refused_and_the_push_stays_open(
    api: httpx.Client, anonymous: httpx.Client, clock: FrozenClock
) -> None:
    user_id, device = push_user(api)
    challenge_id = push(api, user_id).json()["challenge_id"]
    report = device.answer(challenge_id, "deny", reason="not_me", timestamp=int(clock.now()))
    stripped = {k: v for k, v in report.items() if k != "reason"}
    refused = anonymous.post("/v1/push/responses", json=stripped)
    assert refused.status_code == 401, refused.text
    assert api.get(f"/v1/challenges/{challenge_id}").json()["status"] == "pending"
    reported = anonymous.post("/v1/push/responses", json=report)
    assert reported.json()["status"] == "denied"
    assert api.get(f"/v1/challenges/{challenge_id}").json()["fraud_reported"] is True
    assert push(api, user_id).status_code == 429  # the genuine report blocks


# --- the audit -----------------------------------------------------------------------------


def test_the_audit_names_the_application_whose_key_acted_not_the_one_in_the_body(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = make_user(api, FIRM)
    totp = enroll_totp(api, clock, user_id)
    login = api.post(
        "/v1/challenges",
        json={
            "user_id": user_id,
            "factor": "totp",
            "code": totp.at(clock.now()),
            "context": {"application": "grow"},
        },
    )
    assert login.json()["status"] == "verified"
    clock.advance(30)
    pending = api.post(
        "/v1/challenges",
        json={"user_id": user_id, "factor": "totp", "context": {"application": "grow"}},
    ).json()
    api.post(f"/v1/challenges/{pending['challenge_id']}/verify", json={"code": "000000"})
    rows = [e for e in trail(api, user_id) if e["event"].startswith("challenge_")]
    assert {e["event"] for e in rows} == {"challenge_verified", "challenge_failed"}
    assert {e["application"] for e in rows} == {"manage"}


def test_a_login_made_before_a_reset_is_listed_after_it(
    api: httpx.Client, clock: FrozenClock
) -> None:
    admin = make_admin(api, clock, FIRM)
    user_id = make_user(api, FIRM)
    totp = enroll_totp(api, clock, user_id)
    login = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": totp.at(clock.now())}
    )
    assert login.json()["status"] == "verified"  # its audit row waits in the batch
    clock.advance(10)
    assert reset(api, user_id, admin).status_code == 200  # written at once
    events = trail(api, user_id)
    assert [e["event"] for e in events[:2]] == ["mfa_reset", "challenge_verified"]
    assert events[0]["id"] < events[1]["id"]  # the ids alone would list them the other way
