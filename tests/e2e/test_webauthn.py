"""Passkeys and security keys over real HTTP: API → Redis and SQL, with a software authenticator.

Every refusal is tried as an attacker would (another origin, a replayed challenge, another
user's credential or registration, a cloned key) and shown to leave nothing stored.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from tests.e2e.test_login_flows import enroll_totp
from tests.fakes.soft_authenticator import SoftAuthenticator, b64url
from tests.fixtures.pipeline import new_user_id

if TYPE_CHECKING:
    import httpx

    from mfa_pipeline.bootstrap import Container
    from tests.doubles.clock import FrozenClock


def create_user(api: httpx.Client, firm_id: str = "firm-wa") -> str:
    user_id = new_user_id()
    assert api.put(f"/v1/users/{user_id}", json={"firm_id": firm_id}).status_code == 200
    return user_id


def options(api: httpx.Client, user_id: str, name: str | None = None) -> dict[str, Any]:
    answer = api.post(f"/v1/users/{user_id}/factors/webauthn/options", json={"name": name})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def register(
    api: httpx.Client, user_id: str, authenticator: SoftAuthenticator, name: str = "My key"
) -> dict[str, Any]:
    start = options(api, user_id)
    answer = api.post(
        f"/v1/users/{user_id}/factors/webauthn",
        json={
            "registration_id": start["registration_id"],
            "credential": authenticator.create(start["public_key"]),
            "name": name,
        },
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def user_with_key(api: httpx.Client, **key_options: Any) -> tuple[str, SoftAuthenticator]:
    user_id = create_user(api)
    key = SoftAuthenticator(**key_options)
    register(api, user_id, key)
    return user_id, key


def post_registration(
    api: httpx.Client, user_id: str, start: dict[str, Any], credential: Any
) -> httpx.Response:
    return api.post(
        f"/v1/users/{user_id}/factors/webauthn",
        json={"registration_id": start["registration_id"], "credential": credential},
    )


def challenge(api: httpx.Client, user_id: str, factor: str = "webauthn") -> dict[str, Any]:
    answer = api.post("/v1/challenges", json={"user_id": user_id, "factor": factor})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def verify(api: httpx.Client, challenge_id: str, credential: Any, **extra: Any) -> httpx.Response:
    return api.post(
        f"/v1/challenges/{challenge_id}/verify", json={"credential": credential, **extra}
    )


def stored_credentials(container: Container) -> int:
    engine = sa.create_engine(container.settings.effective_database_url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM webauthn_credentials")).scalar()
    engine.dispose()
    return int(count or 0)


def audit_events(api: httpx.Client, user_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/v1/users/{user_id}/audit")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    events: list[dict[str, Any]] = body["events"] if isinstance(body, dict) else body
    return events


# --- registration ----------------------------------------------------------------------------


def test_registration_options_require_user_verification_and_exclude_known_keys(
    api: httpx.Client,
) -> None:
    user_id = create_user(api)
    first = SoftAuthenticator()
    register(api, user_id, first)
    public_key = options(api, user_id)["public_key"]
    assert public_key["rp"] == {"name": "mfa-pipeline", "id": "localhost"}
    assert public_key["attestation"] == "none"
    selection = public_key["authenticatorSelection"]
    assert selection["userVerification"] == "required"
    assert selection["residentKey"] == "preferred"
    assert [p["alg"] for p in public_key["pubKeyCredParams"]] == [-7, -8, -257]
    assert [c["id"] for c in public_key["excludeCredentials"]] == [first.id]
    assert public_key["user"]["name"] == user_id
    assert user_id not in public_key["user"]["id"]  # an opaque handle, not the user id


def test_a_registered_key_is_listed_renamed_and_removed_through_the_factors(
    api: httpx.Client, container: Container, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    key = SoftAuthenticator(backup_eligible=True)
    created = register(api, user_id, key, name="Laptop")
    assert created["type"] == "webauthn"
    assert created["status"] == "active"
    assert created["credential_id"] == key.id
    assert created["backup_eligible"] is True
    clock.advance(1)  # listed in the order registered
    second = register(api, user_id, SoftAuthenticator(), name="Yubikey")

    listed = api.get(f"/v1/users/{user_id}/factors").json()
    assert [(f["type"], f["name"]) for f in listed] == [
        ("webauthn", "Laptop"),
        ("webauthn", "Yubikey"),
    ]
    assert listed[0]["transports"] == ["internal"]
    assert listed[0]["last_used_at"] is None
    assert api.get(f"/v1/users/{user_id}").json()["mfa_enabled"] is True

    renamed = api.patch(
        f"/v1/users/{user_id}/factors/{created['factor_id']}", json={"name": "Work laptop"}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Work laptop"
    assert api.delete(f"/v1/users/{user_id}/factors/{second['factor_id']}").status_code == 204
    assert [f["name"] for f in api.get(f"/v1/users/{user_id}/factors").json()] == ["Work laptop"]
    assert stored_credentials(container) == 1


def test_an_administrators_reset_removes_the_users_keys(
    api: httpx.Client, container: Container, clock: FrozenClock
) -> None:
    firm = new_user_id()
    admin = create_user(api, firm)
    api.put(f"/v1/users/{admin}", json={"firm_id": firm, "role": "admin"})
    enroll_totp(api, clock, admin)
    user_id = create_user(api, firm)
    key = SoftAuthenticator()
    register(api, user_id, key)
    reset = api.delete(f"/v1/users/{user_id}/mfa", params={"actor_id": admin})
    assert reset.status_code == 200, reset.text
    assert api.get(f"/v1/users/{user_id}/factors").json() == []
    assert stored_credentials(container) == 0
    refused = api.post("/v1/challenges", json={"user_id": user_id, "factor": "webauthn"})
    assert refused.status_code == 409


def test_registration_options_are_single_use(api: httpx.Client, container: Container) -> None:
    user_id = create_user(api)
    start = options(api, user_id)
    body = {
        "registration_id": start["registration_id"],
        "credential": SoftAuthenticator().create(start["public_key"]),
    }
    assert api.post(f"/v1/users/{user_id}/factors/webauthn", json=body).status_code == 201
    body["credential"] = SoftAuthenticator().create(start["public_key"])
    again = api.post(f"/v1/users/{user_id}/factors/webauthn", json=body)
    assert again.status_code == 404
    assert again.json()["error"]["field"] == "registration_id"
    assert stored_credentials(container) == 1


def test_registration_options_expire_after_five_minutes(
    api: httpx.Client, container: Container
) -> None:
    user_id = create_user(api)
    start = options(api, user_id)
    key = f"{container.settings.key_prefix}:wa:reg:{user_id}:{start['registration_id']}"
    assert 295_000 <= container.redis.pttl(key) <= 300_000
    container.redis.pexpire(key, 1)  # what 5 minutes do, without waiting for them
    expired = post_registration(
        api, user_id, start, SoftAuthenticator().create(start["public_key"])
    )
    assert expired.status_code == 404
    assert stored_credentials(container) == 0


def test_another_users_registration_id_is_not_found_and_stays_usable_by_its_owner(
    api: httpx.Client, container: Container
) -> None:
    owner, intruder = create_user(api), create_user(api)
    start = options(api, owner)
    stolen = post_registration(
        api, intruder, start, SoftAuthenticator().create(start["public_key"])
    )
    assert stolen.status_code == 404
    assert stored_credentials(container) == 0
    owned = post_registration(api, owner, start, SoftAuthenticator().create(start["public_key"]))
    assert owned.status_code == 201


@pytest.mark.parametrize(
    ("authenticator", "tamper", "reason"),
    [
        (SoftAuthenticator(origin="https://evil.example"), {}, "origin_not_allowed"),
        (SoftAuthenticator(rp_id="evil.example"), {}, "rp_id_mismatch"),
        (SoftAuthenticator(user_verified=False), {}, "user_verification_missing"),
        (
            SoftAuthenticator(),
            {"challenge": b64url(b"another challenge, not ours")},
            "challenge_mismatch",
        ),
    ],
    ids=["other-origin", "other-rp-id", "no-user-verification", "wrong-challenge"],
)
def test_a_registration_that_fails_a_check_is_refused_with_its_reason_and_nothing_stored(
    api: httpx.Client,
    container: Container,
    authenticator: SoftAuthenticator,
    tamper: dict[str, str],
    reason: str,
) -> None:
    user_id = create_user(api)
    start = options(api, user_id)
    refused = post_registration(
        api, user_id, start, authenticator.create(start["public_key"], **tamper)
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "invalid_credential"
    assert refused.json()["error"]["reason"] == reason
    assert stored_credentials(container) == 0
    assert api.get(f"/v1/users/{user_id}/factors").json() == []


@pytest.mark.parametrize(
    "credential",
    [
        "not an object",
        {"id": "abc", "rawId": "abc", "type": "public-key"},
        {"id": "ab!c", "rawId": "ab!c", "type": "public-key", "response": {}},
    ],
    ids=["string", "no-response", "bad-base64url"],
)
def test_a_malformed_registration_is_refused_and_leaves_the_options_usable(
    api: httpx.Client, container: Container, credential: Any
) -> None:
    user_id = create_user(api)
    start = options(api, user_id)
    url = f"/v1/users/{user_id}/factors/webauthn"
    refused = api.post(
        url, json={"registration_id": start["registration_id"], "credential": credential}
    )
    assert refused.status_code in (400, 422), refused.text
    if refused.status_code == 400:
        assert refused.json()["error"] == refused.json()["error"] | {
            "code": "invalid_credential",
            "reason": "malformed",
        }
    assert stored_credentials(container) == 0
    good = SoftAuthenticator().create(start["public_key"])
    assert (
        api.post(
            url, json={"registration_id": start["registration_id"], "credential": good}
        ).status_code
        == 201
    )


def test_a_bad_base64url_field_inside_the_response_is_named(api: httpx.Client) -> None:
    user_id = create_user(api)
    start = options(api, user_id)
    credential = SoftAuthenticator().create(start["public_key"])
    credential["response"]["attestationObject"] = (
        "%%%" + credential["response"]["attestationObject"]
    )
    refused = post_registration(api, user_id, start, credential)
    assert refused.status_code == 400
    assert refused.json()["error"]["reason"] == "malformed"
    assert refused.json()["error"]["field"] == "response.attestationObject"


def test_oversized_json_is_refused_before_it_is_read(
    api: httpx.Client, container: Container
) -> None:
    user_id = create_user(api)
    start = options(api, user_id)
    credential = SoftAuthenticator().create(start["public_key"])
    credential["response"]["clientDataJSON"] = "A" * 20_000
    refused = post_registration(api, user_id, start, credential)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    assert stored_credentials(container) == 0


def test_the_same_key_cannot_be_registered_twice(api: httpx.Client, container: Container) -> None:
    user_id, other = create_user(api), create_user(api)
    key = SoftAuthenticator()
    register(api, user_id, key)
    start = options(api, other)
    again = post_registration(api, other, start, key.create(start["public_key"]))
    assert again.status_code == 409
    assert stored_credentials(container) == 1


# --- login -----------------------------------------------------------------------------------


def test_a_passkey_login_verifies_and_can_remember_the_device(api: httpx.Client) -> None:
    user_id = create_user(api)
    key = SoftAuthenticator()
    created = register(api, user_id, key)
    started = challenge(api, user_id)
    assert started["factor"] == "webauthn"
    request = started["public_key"]
    assert request["userVerification"] == "required"
    assert request["rpId"] == "localhost"
    assert [c["id"] for c in request["allowCredentials"]] == [key.id]
    answer = verify(api, started["challenge_id"], key.get(request), remember_device=True)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "verified"
    token = answer.json()["trusted_token"]
    assert token
    pre = api.post("/v1/preauth", json={"user_id": user_id, "trusted_token": token}).json()
    assert pre["result"] == "allow"
    listed = api.get(f"/v1/users/{user_id}/factors").json()
    assert listed[0]["last_used_at"] is not None
    verified = [e for e in audit_events(api, user_id) if e["event"] == "challenge_verified"]
    assert verified[0]["factor_id"] == created["factor_id"]


def test_auto_picks_webauthn_first_and_preauth_lists_it(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    enroll_totp(api, clock, user_id)
    assert challenge(api, user_id, "auto")["factor"] == "totp"
    register(api, user_id, SoftAuthenticator())
    pre = api.post("/v1/preauth", json={"user_id": user_id}).json()
    assert pre["result"] == "auth"
    assert sorted(f["type"] for f in pre["factors"]) == ["totp", "webauthn"]
    auto = challenge(api, user_id, "auto")
    assert auto["factor"] == "webauthn"
    assert auto["public_key"]["allowCredentials"]


def test_a_firm_may_allow_webauthn_alone(api: httpx.Client, clock: FrozenClock) -> None:
    firm = new_user_id()
    admin = create_user(api, firm)
    api.put(f"/v1/users/{admin}", json={"firm_id": firm, "role": "admin"})
    register(api, admin, SoftAuthenticator())
    enroll_totp(api, clock, admin)
    policy = api.put(
        f"/v1/firms/{firm}/policy",
        json={"actor_id": admin, "require_mfa": True, "allowed_factors": ["webauthn"]},
    )
    assert policy.status_code == 200, policy.text
    assert policy.json()["allowed_factors"] == ["webauthn"]
    pre = api.post("/v1/preauth", json={"user_id": admin}).json()
    assert [f["type"] for f in pre["factors"]] == ["webauthn"]
    refused = api.post("/v1/challenges", json={"user_id": admin, "factor": "totp"})
    assert refused.status_code == 403
    assert challenge(api, admin, "auto")["factor"] == "webauthn"
    newcomer = create_user(api, firm)
    assert api.post("/v1/preauth", json={"user_id": newcomer}).json()["result"] == "enroll"
    assert api.post(f"/v1/users/{newcomer}/factors/totp").status_code == 403
    register(api, newcomer, SoftAuthenticator())
    assert api.post("/v1/preauth", json={"user_id": newcomer}).json()["result"] == "auth"


def test_a_counter_that_goes_backwards_is_refused_and_audited_as_a_clone(
    api: httpx.Client,
) -> None:
    user_id, key = user_with_key(api)
    first = challenge(api, user_id)
    assert verify(api, first["challenge_id"], key.get(first["public_key"])).status_code == 200
    # A copy of the key, made before that login, still counts from where it was.
    second = challenge(api, user_id)
    cloned = key.get(second["public_key"], sign_count=1)
    refused = verify(api, second["challenge_id"], cloned)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_credential"
    assert refused.json()["error"]["reason"] == "counter_regressed"
    assert refused.json()["error"]["attempts_remaining"] == 4
    events = audit_events(api, user_id)
    assert any(
        e["event"] == "webauthn_clone_suspected" and e["outcome"] == "counter_regressed"
        for e in events
    )
    assert api.get(f"/v1/challenges/{second['challenge_id']}").json()["status"] == "pending"


def test_two_logins_open_at_once_both_verify_whatever_the_order(api: httpx.Client) -> None:
    user_id, key = user_with_key(api)
    first, second = challenge(api, user_id), challenge(api, user_id)
    earlier = key.get(first["public_key"])
    later = key.get(second["public_key"])
    assert verify(api, second["challenge_id"], later).status_code == 200
    # The counter moved on since the first challenge's options: judged against the row now,
    # the first assertion's counter (1) is below the stored one (2).
    refused = verify(api, first["challenge_id"], earlier)
    assert refused.json()["error"]["reason"] == "counter_regressed"
    third = challenge(api, user_id)
    fourth = challenge(api, user_id)
    assert verify(api, fourth["challenge_id"], key.get(fourth["public_key"])).status_code == 200
    assert verify(api, third["challenge_id"], key.get(third["public_key"])).status_code == 200


def test_a_key_removed_after_the_challenge_was_issued_cannot_answer_it(
    api: httpx.Client,
) -> None:
    user_id = create_user(api)
    key, other = SoftAuthenticator(), SoftAuthenticator()
    removed = register(api, user_id, key)
    register(api, user_id, other)
    started = challenge(api, user_id)
    assert api.delete(f"/v1/users/{user_id}/factors/{removed['factor_id']}").status_code == 204
    refused = verify(api, started["challenge_id"], key.get(started["public_key"]))
    assert refused.status_code == 400
    assert refused.json()["error"]["reason"] == "unknown_credential"
    assert verify(api, started["challenge_id"], other.get(started["public_key"])).status_code == 200


def test_authenticators_whose_counter_stays_zero_keep_working(api: httpx.Client) -> None:
    user_id = create_user(api)
    passkey = SoftAuthenticator(counter_step=0, backup_eligible=True)
    register(api, user_id, passkey)
    for _ in range(3):
        started = challenge(api, user_id)
        answer = verify(api, started["challenge_id"], passkey.get(started["public_key"]))
        assert answer.status_code == 200, answer.text


def test_an_assertion_cannot_be_replayed_on_its_challenge_or_a_new_one(api: httpx.Client) -> None:
    user_id, key = user_with_key(api)
    first = challenge(api, user_id)
    assertion = key.get(first["public_key"])
    assert verify(api, first["challenge_id"], assertion).status_code == 200
    again = verify(api, first["challenge_id"], assertion)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "challenge_completed"
    second = challenge(api, user_id)
    replayed = verify(api, second["challenge_id"], assertion)
    assert replayed.status_code == 400
    assert replayed.json()["error"]["reason"] == "challenge_mismatch"


def test_another_users_credential_is_refused_and_uses_an_attempt(api: httpx.Client) -> None:
    victim, attacker = create_user(api), create_user(api)
    register(api, victim, SoftAuthenticator())
    attackers_key = SoftAuthenticator()
    register(api, attacker, attackers_key)
    started = challenge(api, victim)
    refused = verify(api, started["challenge_id"], attackers_key.get(started["public_key"]))
    assert refused.status_code == 400
    assert refused.json()["error"]["reason"] == "unknown_credential"
    assert refused.json()["error"]["attempts_remaining"] == 4


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({"origin": "https://evil.example"}, "origin_not_allowed"),
        ({"rp_id": "evil.example"}, "rp_id_mismatch"),
        ({"challenge": b64url(b"a challenge of some other login")}, "challenge_mismatch"),
    ],
    ids=["phishing-origin", "other-rp-id", "wrong-challenge"],
)
def test_an_assertion_that_fails_a_check_is_refused_with_its_reason(
    api: httpx.Client, tamper: dict[str, str], reason: str
) -> None:
    user_id, key = user_with_key(api)
    started = challenge(api, user_id)
    refused = verify(api, started["challenge_id"], key.get(started["public_key"], **tamper))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == refused.json()["error"] | {
        "code": "invalid_credential",
        "reason": reason,
        "attempts_remaining": 4,
    }


def test_an_assertion_without_user_verification_is_refused(api: httpx.Client) -> None:
    user_id, key = user_with_key(api)
    key.user_verified = False
    started = challenge(api, user_id)
    refused = verify(api, started["challenge_id"], key.get(started["public_key"]))
    assert refused.status_code == 400
    assert refused.json()["error"]["reason"] == "user_verification_missing"


def test_a_forged_signature_is_refused(api: httpx.Client) -> None:
    user_id, key = user_with_key(api)
    impostor = SoftAuthenticator(credential_id=key.credential_id)  # same id, another key
    started = challenge(api, user_id)
    refused = verify(api, started["challenge_id"], impostor.get(started["public_key"]))
    assert refused.status_code == 400
    assert refused.json()["error"]["reason"] == "bad_signature"


def test_malformed_assertions_do_not_use_attempts(api: httpx.Client) -> None:
    user_id, key = user_with_key(api)
    started = challenge(api, user_id)
    good = key.get(started["public_key"])
    bad_base64 = json.loads(json.dumps(good))
    bad_base64["response"]["signature"] = "not*base64url"
    for credential in (bad_base64, {"id": key.id}, ["a list"]):
        refused = verify(api, started["challenge_id"], credential)
        assert refused.status_code in (400, 422), refused.text
        if refused.status_code == 400:
            assert refused.json()["error"]["reason"] == "malformed"
    state = api.get(f"/v1/challenges/{started['challenge_id']}").json()
    assert state["attempts_remaining"] == 5
    assert verify(api, started["challenge_id"], good).status_code == 200


def test_five_refused_assertions_lock_the_challenge(api: httpx.Client) -> None:
    user_id, key = user_with_key(api)
    started = challenge(api, user_id)
    phished = key.get(started["public_key"], origin="https://evil.example")
    statuses = [verify(api, started["challenge_id"], phished).status_code for _ in range(5)]
    assert statuses == [400, 400, 400, 400, 429]
    good = key.get(started["public_key"])
    assert verify(api, started["challenge_id"], good).status_code == 429
    assert api.get(f"/v1/challenges/{started['challenge_id']}").json()["status"] == "locked"


def test_a_webauthn_challenge_wants_a_credential_and_a_code_challenge_a_code(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    register(api, user_id, SoftAuthenticator())
    started = challenge(api, user_id)
    missing = api.post(f"/v1/challenges/{started['challenge_id']}/verify", json={"code": "123456"})
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "credential"
    enroll_totp(api, clock, user_id)
    totp = challenge(api, user_id, "totp")
    no_code = api.post(f"/v1/challenges/{totp['challenge_id']}/verify", json={})
    assert no_code.status_code == 422
    assert no_code.json()["error"]["field"] == "code"
