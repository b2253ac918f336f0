"""Firm-wide MFA policy over real HTTP: who may change it, `enroll`, disallowed factors, regions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyotp
import pytest

from tests.e2e.test_login_flows import PHONE, enroll_sms, enroll_totp
from tests.fixtures.pipeline import new_user_id

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.bootstrap import Container
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio

pytestmark = pytest.mark.usefixtures("worker")

FIRM = "firm-acme"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # GB is both allowed and denied: a denial wins. FR is simply not in the allowed list.
    return {"sms_allowed_regions": ["US", "CA", "GB"], "sms_denied_regions": ["gb"]}


def make_user(api: httpx.Client, firm_id: str = FIRM, role: str = "member") -> str:
    user_id = new_user_id()
    put = api.put(f"/v1/users/{user_id}", json={"firm_id": firm_id, "role": role})
    assert put.status_code == 200, put.text
    return user_id


def make_admin(api: httpx.Client, clock: FrozenClock, firm_id: str = FIRM) -> str:
    """An administrator of the firm with MFA enabled: who may administer its MFA."""
    admin_id = make_user(api, firm_id, role="admin")
    enroll_totp(api, clock, admin_id)
    return admin_id


def put_policy(api: httpx.Client, actor_id: str, **policy: Any) -> httpx.Response:
    return api.put(f"/v1/firms/{FIRM}/policy", json={"actor_id": actor_id, **policy})


def preauth(api: httpx.Client, user_id: str) -> dict[str, Any]:
    answer = api.post("/v1/preauth", json={"user_id": user_id})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_firm_that_never_set_a_policy_requires_nothing_and_allows_everything(
    api: httpx.Client,
) -> None:
    body = api.get(f"/v1/firms/{FIRM}/policy").json()
    assert body == body | {"firm_id": FIRM, "require_mfa": False, "allowed_factors": []}


def test_an_administrator_without_mfa_cannot_change_the_policy(api: httpx.Client) -> None:
    admin_id = make_user(api, role="admin")
    refused = put_policy(api, admin_id, require_mfa=True, allowed_factors=["totp"])
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "actor_mfa_required"
    unchanged = api.get(f"/v1/firms/{FIRM}/policy").json()
    assert unchanged["require_mfa"] is False
    assert unchanged["allowed_factors"] == []
    assert unchanged["updated_by"] is None
    trail = api.get(f"/v1/users/{admin_id}/audit").json()["events"]
    assert trail[0] | {"event": "policy_changed", "outcome": "actor_mfa_required"} == trail[0]


def test_an_administrator_with_only_a_pending_factor_cannot_change_the_policy(
    api: httpx.Client,
) -> None:
    admin_id = make_user(api, role="admin")
    assert api.post(f"/v1/users/{admin_id}/factors/totp").status_code == 201  # never activated
    refused = put_policy(api, admin_id, require_mfa=True)
    assert refused.status_code == 409
    assert api.get(f"/v1/firms/{FIRM}/policy").json()["require_mfa"] is False


def test_an_administrator_of_another_firm_cannot_change_the_policy(
    api: httpx.Client, clock: FrozenClock
) -> None:
    outsider = make_admin(api, clock, firm_id="firm-other")
    refused = put_policy(api, outsider, require_mfa=True)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert api.get(f"/v1/firms/{FIRM}/policy").json()["require_mfa"] is False


def test_an_unknown_factor_name_is_an_invalid_request(
    api: httpx.Client, clock: FrozenClock
) -> None:
    admin_id = make_admin(api, clock)
    answer = put_policy(api, admin_id, require_mfa=True, allowed_factors=["email"])
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_request"


def test_required_mfa_asks_a_user_without_a_factor_to_enroll(
    api: httpx.Client, clock: FrozenClock
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    elsewhere = make_user(api, firm_id="firm-other")
    assert preauth(api, user_id)["result"] == "bypass"
    assert api.get(f"/v1/users/{user_id}").json()["enrollment_required"] is False

    changed = put_policy(api, admin_id, require_mfa=True, allowed_factors=[])
    assert changed.status_code == 200, changed.text
    assert changed.json() | {"require_mfa": True, "updated_by": admin_id} == changed.json()

    assert preauth(api, user_id) == {"result": "enroll", "factors": []}
    assert api.get(f"/v1/users/{user_id}").json()["enrollment_required"] is True
    assert preauth(api, elsewhere)["result"] == "bypass"  # another firm: its own policy
    assert preauth(api, admin_id)["result"] == "auth"

    enroll_totp(api, clock, user_id)
    assert preauth(api, user_id)["result"] == "auth"
    assert api.get(f"/v1/users/{user_id}").json()["enrollment_required"] is False


def test_a_disallowed_factor_cannot_be_enrolled_and_nothing_is_stored(
    api: httpx.Client, clock: FrozenClock, fake_twilio: FakeTwilio, container: Container
) -> None:
    admin_id = make_admin(api, clock)
    assert put_policy(api, admin_id, require_mfa=True, allowed_factors=["totp"]).status_code == 200
    user_id = make_user(api)

    refused = api.post(f"/v1/users/{user_id}/factors/sms", json={"phone": PHONE})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "factor_not_allowed"
    assert "text messages" in refused.json()["error"]["message"]
    assert api.get(f"/v1/users/{user_id}/factors").json() == []
    assert container.ports.factors.list_factors(user_id) == []
    assert fake_twilio.messages == []

    assert put_policy(api, admin_id, require_mfa=True, allowed_factors=["sms"]).status_code == 200
    refused = api.post(f"/v1/users/{user_id}/factors/totp")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "factor_not_allowed"
    assert container.ports.factors.list_factors(user_id) == []


def test_a_pending_factor_of_a_type_disallowed_since_cannot_be_activated(
    api: httpx.Client, clock: FrozenClock
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    pending = api.post(f"/v1/users/{user_id}/factors/totp").json()
    assert put_policy(api, admin_id, require_mfa=True, allowed_factors=["sms"]).status_code == 200
    answer = api.post(
        f"/v1/users/{user_id}/factors/{pending['factor_id']}/activate",
        json={"code": pyotp.TOTP(pending["secret"]).at(clock.now())},
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "factor_not_allowed"


def test_a_disallowed_factor_cannot_be_challenged_and_auto_skips_it(
    api: httpx.Client, clock: FrozenClock, fake_twilio: FakeTwilio
) -> None:
    admin_id = make_admin(api, clock)
    user_id = make_user(api)
    enroll_totp(api, clock, user_id)
    enroll_sms(api, fake_twilio, user_id)
    # Without a restriction `auto` picks TOTP over SMS.
    auto = api.post("/v1/challenges", json={"user_id": user_id, "factor": "auto"})
    assert auto.json()["factor"] == "totp"

    assert put_policy(api, admin_id, require_mfa=True, allowed_factors=["sms"]).status_code == 200
    explicit = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"})
    assert explicit.status_code == 403
    assert explicit.json()["error"]["code"] == "factor_not_allowed"
    auto = api.post("/v1/challenges", json={"user_id": user_id, "factor": "auto"})
    assert auto.status_code == 201, auto.text
    assert auto.json()["factor"] == "sms"
    assert [f["type"] for f in preauth(api, user_id)["factors"]] == ["sms"]
    backup = api.post("/v1/challenges", json={"user_id": user_id, "factor": "backup_code"})
    assert backup.status_code == 403


def test_an_sms_number_of_a_disallowed_region_is_refused_with_a_reason(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = make_user(api)
    for phone in ("+44 7400 123456", "+33 6 12 34 56 78"):  # GB denied, FR not allowed
        refused = api.post(f"/v1/users/{user_id}/factors/sms", json={"phone": phone})
        assert refused.status_code == 422, phone
        assert refused.json()["error"]["code"] == "invalid_phone"
        assert "cannot send text messages" in refused.json()["error"]["message"]
    assert api.get(f"/v1/users/{user_id}/factors").json() == []
    assert fake_twilio.messages == []


def test_an_sms_enrollment_shows_the_number_in_international_and_national_form(
    api: httpx.Client,
) -> None:
    user_id = make_user(api)
    created = api.post(
        f"/v1/users/{user_id}/factors/sms", json={"phone": "(201) 555-0123", "region": "us"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["phone_e164"] == "+12015550123"
    assert body["phone_display"] == "+1 201-555-0123"
    assert body["phone_national"] == "(201) 555-0123"


def test_a_fixed_line_number_is_still_refused(api: httpx.Client) -> None:
    user_id = make_user(api)
    refused = api.post(f"/v1/users/{user_id}/factors/sms", json={"phone": "+44 20 7946 0958"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_phone"
