"""Administrators invite users to enable MFA, over real HTTP, SQL, broker, worker and webhook."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from mfa_pipeline.adapters.sql_models import MfaInvitationRow
from mfa_pipeline.adapters.sql_repository import create_engine_for
from mfa_pipeline.cli.device import SimulatedDevice
from mfa_pipeline.services.webhooks import SIGNATURE_HEADER, verify_signature
from tests.e2e.test_login_flows import enroll_totp
from tests.e2e.test_policies import make_admin, make_user, preauth, put_policy
from tests.e2e.test_result_webhook import SECRET, Receiver, receiver
from tests.e2e.test_webauthn import register
from tests.fakes.soft_authenticator import SoftAuthenticator
from tests.fixtures.pipeline import new_user_id, wait_until

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.bootstrap import Container
    from tests.doubles.clock import FrozenClock

__all__ = ["receiver"]

pytestmark = pytest.mark.usefixtures("worker")

FIRM = "firm-acme"


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, Any]:
    return {"result_webhook_url": receiver.url, "result_webhook_secret": SECRET}


def invite(api: httpx.Client, actor_id: str, user_ids: list[str], firm: str = FIRM) -> Any:
    return api.post(
        f"/v1/firms/{firm}/invitations", json={"actor_id": actor_id, "user_ids": user_ids}
    )


def withdraw(api: httpx.Client, actor_id: str, user_id: str) -> httpx.Response:
    return api.delete(f"/v1/firms/{FIRM}/invitations/{user_id}", params={"actor_id": actor_id})


def stored(container: Container) -> list[tuple[str, str, str, float]]:
    """The invitation rows as the database holds them: (who, firm, by whom, when)."""
    engine = create_engine_for(container.settings.effective_database_url)
    try:
        with engine.connect() as connection:
            rows = list(connection.execute(sa.select(MfaInvitationRow.__table__)))
    finally:
        engine.dispose()
    return sorted((r.user_id, r.firm_id, r.invited_by, r.invited_at) for r in rows)


def user_events(receiver: Receiver) -> list[dict[str, Any]]:
    events = [json.loads(body) for _, body in receiver.received]
    return [e for e in events if e["type"].startswith("user.")]


def trail(api: httpx.Client, user_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get(f"/v1/users/{user_id}/audit").json()["events"]
    return events


def test_an_invited_user_without_a_factor_is_told_at_preauth_who_invited_them_and_when(
    api: httpx.Client, clock: FrozenClock, container: Container
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    assert preauth(api, user_id) == {"result": "bypass", "factors": []}  # not invited yet
    answer = invite(api, admin_id, [user_id])
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"invited": [user_id], "skipped": []}
    body = preauth(api, user_id)
    assert (
        body
        | {
            "result": "bypass",
            "invited": True,
            "invited_by": admin_id,
            "invited_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now())),
        }
        == body
    )
    assert stored(container) == [(user_id, FIRM, admin_id, clock.now())]
    assert (
        trail(api, user_id)[0] | {"event": "mfa_invited", "actor_id": admin_id}
        == trail(api, user_id)[0]
    )


def test_users_enrolled_of_another_firm_or_unknown_are_skipped_with_a_reason(
    api: httpx.Client, clock: FrozenClock, container: Container
) -> None:
    admin_id = make_admin(api, clock)
    member = make_user(api)
    enrolled = make_user(api)
    enroll_totp(api, clock, enrolled)
    elsewhere = make_user(api, firm_id="firm-other")
    unknown = new_user_id()
    answer = invite(api, admin_id, [member, enrolled, elsewhere, unknown, member])
    assert answer.status_code == 201, answer.text
    assert answer.json() == {
        "invited": [member],
        "skipped": [
            {"user_id": enrolled, "reason": "already_enrolled"},
            {"user_id": elsewhere, "reason": "not_in_firm"},
            {"user_id": unknown, "reason": "unknown_user"},
        ],
    }
    assert [row[0] for row in stored(container)] == [member]
    assert "invited" not in preauth(api, elsewhere)


def test_the_invitation_reaches_the_webhook_signed_with_a_stable_id(
    api: httpx.Client, clock: FrozenClock, receiver: Receiver
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    receiver.statuses = [503]  # the first delivery fails: the retry carries the same id
    invite(api, admin_id, [user_id])
    wait_until(lambda: len(user_events(receiver)) >= 2)
    first, second = user_events(receiver)[:2]
    assert first == second
    assert (
        first
        | {
            "type": "user.mfa_invited",
            "user_id": user_id,
            "firm_id": FIRM,
            "actor_id": admin_id,
        }
        == first
    )
    assert first["id"].endswith(":invited")
    headers, body = next(
        (h, b) for h, b in receiver.received if json.loads(b)["type"] == "user.mfa_invited"
    )
    assert verify_signature(SECRET, headers[SIGNATURE_HEADER], body, now=clock.now())


def test_a_repeated_invitation_keeps_the_first_and_sends_no_second_event(
    api: httpx.Client, clock: FrozenClock, container: Container, receiver: Receiver
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    invite(api, admin_id, [user_id])
    first_at = preauth(api, user_id)["invited_at"]
    clock.advance(3600)
    again = invite(api, admin_id, [user_id])
    assert again.status_code == 201
    assert again.json() == {"invited": [user_id], "skipped": []}
    assert preauth(api, user_id)["invited_at"] == first_at
    assert len(stored(container)) == 1
    wait_until(lambda: user_events(receiver))
    time.sleep(0.3)  # a second event would show up here
    assert [e["type"] for e in user_events(receiver)] == ["user.mfa_invited"]
    assert [e["event"] for e in trail(api, user_id)].count("mfa_invited") == 1


def test_withdrawing_ends_the_invitation_once_and_is_idempotent(
    api: httpx.Client, clock: FrozenClock, container: Container, receiver: Receiver
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    invite(api, admin_id, [user_id])
    assert withdraw(api, admin_id, user_id).status_code == 204
    assert withdraw(api, admin_id, user_id).status_code == 204
    assert preauth(api, user_id) == {"result": "bypass", "factors": []}
    assert stored(container) == []
    wait_until(lambda: len(user_events(receiver)) >= 2)
    time.sleep(0.3)  # a second withdrawal event would show up here
    events = user_events(receiver)
    assert [e["type"] for e in events] == ["user.mfa_invited", "user.mfa_invitation_withdrawn"]
    assert events[1]["id"] == events[0]["id"].replace(":invited", ":withdrawn")
    assert [e["event"] for e in trail(api, user_id)].count("mfa_invitation_withdrawn") == 1


def test_when_the_firm_requires_mfa_enroll_wins_over_the_invitation(
    api: httpx.Client, clock: FrozenClock
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    invite(api, admin_id, [user_id])
    assert put_policy(api, admin_id, require_mfa=True).status_code == 200
    assert preauth(api, user_id)["result"] == "enroll"


@pytest.mark.parametrize("factor", ["totp", "push", "webauthn"])
def test_enrolling_any_factor_ends_the_invitation(
    api: httpx.Client, clock: FrozenClock, container: Container, factor: str
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    invite(api, admin_id, [user_id])
    if factor == "totp":
        enroll_totp(api, clock, user_id)
    elif factor == "push":
        SimulatedDevice.generate().register(api, user_id)
    else:
        register(api, user_id, SoftAuthenticator())
    assert preauth(api, user_id)["result"] == "auth"
    assert stored(container) == []
    factor_id = api.get(f"/v1/users/{user_id}/factors").json()[0]["factor_id"]
    assert api.delete(f"/v1/users/{user_id}/factors/{factor_id}").status_code in {200, 204}
    assert "invited" not in preauth(api, user_id)  # enrolling ended it for good


# --- refusals: nothing is written -------------------------------------------------------------


def refused(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code
    return error


def test_a_member_cannot_invite(
    api: httpx.Client, clock: FrozenClock, container: Container
) -> None:
    member = make_user(api)
    enroll_totp(api, clock, member)
    user_id = make_user(api)
    refused(invite(api, member, [user_id]), 403, "forbidden")
    refused(withdraw(api, member, user_id), 403, "forbidden")
    assert stored(container) == []
    assert "invited" not in preauth(api, user_id)


def test_an_administrator_without_mfa_cannot_invite(
    api: httpx.Client, container: Container
) -> None:
    admin_id = make_user(api, role="admin")
    user_id = make_user(api)
    refused(invite(api, admin_id, [user_id]), 409, "actor_mfa_required")
    assert stored(container) == []
    assert (
        trail(api, admin_id)[0]
        | {
            "event": "mfa_invited",
            "outcome": "actor_mfa_required",
        }
        == trail(api, admin_id)[0]
    )


def test_an_administrator_of_another_firm_cannot_invite_or_withdraw(
    api: httpx.Client, clock: FrozenClock, container: Container
) -> None:
    ours = make_admin(api, clock)
    theirs = make_admin(api, clock, firm_id="firm-other")
    user_id = make_user(api)
    refused(invite(api, theirs, [user_id]), 403, "forbidden")
    assert stored(container) == []
    invite(api, ours, [user_id])
    refused(withdraw(api, theirs, user_id), 403, "forbidden")
    assert preauth(api, user_id)["invited"] is True


def test_an_empty_list_is_refused(api: httpx.Client, clock: FrozenClock) -> None:
    admin_id = make_admin(api, clock)
    error = refused(invite(api, admin_id, []), 422, "invalid_request")
    assert "user_ids" in json.dumps(error)


def test_more_than_a_thousand_ids_are_refused_and_nothing_is_written(
    api: httpx.Client, clock: FrozenClock, container: Container
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    too_many = [user_id] + [f"user-{n:06d}" for n in range(1000)]
    error = refused(invite(api, admin_id, too_many), 422, "invalid_request")
    assert "user_ids" in json.dumps(error)
    assert stored(container) == []
    at_most = invite(api, admin_id, too_many[:1000])
    assert at_most.status_code == 201, at_most.text
    assert at_most.json()["invited"] == [user_id]
    assert len(at_most.json()["skipped"]) == 999


def test_a_malformed_user_id_refuses_the_whole_call(
    api: httpx.Client, clock: FrozenClock, container: Container
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    refused(invite(api, admin_id, [user_id, "bad id\n"]), 422, "invalid_request")
    refused(invite(api, admin_id, "not-a-list"), 422, "invalid_request")  # type: ignore[arg-type]
    assert stored(container) == []
