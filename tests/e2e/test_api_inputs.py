"""Bad input gets the contract's error, and nothing is lost or wrongly accepted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyotp
import pytest

from tests.fixtures.pipeline import new_user_id

if TYPE_CHECKING:
    import httpx

    from tests.doubles.clock import FrozenClock


@pytest.fixture
def totp_challenge(api: httpx.Client, clock: FrozenClock) -> tuple[str, pyotp.TOTP]:
    user_id = new_user_id()
    api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
    body = api.post(f"/v1/users/{user_id}/factors/totp").json()
    totp = pyotp.TOTP(body["secret"])
    api.post(
        f"/v1/users/{user_id}/factors/{body['factor_id']}/activate",
        json={"code": totp.at(clock.now())},
    )
    clock.advance(30)
    challenge = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).json()
    return challenge["challenge_id"], totp


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str)
    return dict(body["error"])


def test_a_request_without_an_api_key_is_unauthenticated(anonymous: httpx.Client) -> None:
    answer = anonymous.get("/v1/users/alice")
    assert answer.status_code == 401
    assert error_of(answer)["code"] == "unauthenticated"
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_a_wrong_api_key_is_unauthenticated(anonymous: httpx.Client) -> None:
    answer = anonymous.get("/v1/users/alice", headers={"Authorization": "Bearer " + "x" * 30})
    assert answer.status_code == 401
    assert error_of(answer)["code"] == "unauthenticated"


def test_malformed_json_is_an_invalid_request(api: httpx.Client) -> None:
    answer = api.post(
        "/v1/challenges", content=b'{"user_id": "a",', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert error_of(answer) | {"code": "invalid_request", "field": "body"} == error_of(answer)


def test_a_field_of_the_wrong_type_names_the_field(
    api: httpx.Client, totp_challenge: tuple[str, pyotp.TOTP]
) -> None:
    challenge_id, _ = totp_challenge
    answer = api.post(
        f"/v1/challenges/{challenge_id}/verify",
        json={"code": "123456", "remember_device": {"yes": 1}},
    )
    assert answer.status_code == 422
    assert error_of(answer)["field"] == "remember_device"
    assert api.get(f"/v1/challenges/{challenge_id}").json()["attempts_remaining"] == 5


def test_a_code_sent_as_a_number_is_an_invalid_code_and_uses_no_attempt(
    api: httpx.Client, totp_challenge: tuple[str, pyotp.TOTP]
) -> None:
    challenge_id, _ = totp_challenge
    answer = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": 123456})
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "invalid_code"
    assert api.get(f"/v1/challenges/{challenge_id}").json()["attempts_remaining"] == 5


@pytest.mark.parametrize(
    "code", ["١٢٣٤٥٦", "１２３４５６", "12345", "1234567", "12a456", "", "123_456"]
)
def test_a_code_of_the_wrong_shape_is_invalid_and_uses_no_attempt(
    api: httpx.Client, totp_challenge: tuple[str, pyotp.TOTP], code: str
) -> None:
    challenge_id, _ = totp_challenge
    answer = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code})
    assert answer.status_code == 400
    assert error_of(answer)["code"] == "invalid_code"
    assert api.get(f"/v1/challenges/{challenge_id}").json()["attempts_remaining"] == 5


@pytest.mark.parametrize("code_format", ["{} {}", "{}-{}", " {}{} "])
def test_a_code_with_a_space_or_dash_is_accepted(
    api: httpx.Client, totp_challenge: tuple[str, pyotp.TOTP], clock: FrozenClock, code_format: str
) -> None:
    challenge_id, totp = totp_challenge
    code = totp.at(clock.now())
    typed = code_format.format(code[:3], code[3:])
    answer = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": typed})
    assert answer.status_code == 200


def test_a_huge_body_is_refused_before_it_is_read(api: httpx.Client) -> None:
    answer = api.post(
        "/v1/challenges",
        content=b'{"user_id": "' + b"a" * 100_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "payload_too_large"


def test_a_user_id_with_key_syntax_is_refused(api: httpx.Client) -> None:
    answer = api.post("/v1/challenges", json={"user_id": "a*{x}\n", "factor": "totp"})
    assert answer.status_code == 422
    assert error_of(answer)["field"] == "user_id"


def test_an_unknown_challenge_is_not_found(api: httpx.Client) -> None:
    for challenge_id in ["nope", "0" * 31, "../../etc"]:
        answer = api.get(f"/v1/challenges/{challenge_id}")
        assert answer.status_code == 404
        assert error_of(answer)["code"] == "not_found"


def test_an_unknown_factor_name_is_an_invalid_request(api: httpx.Client) -> None:
    answer = api.post("/v1/challenges", json={"user_id": "alice", "factor": "carrier-pigeon"})
    assert answer.status_code == 422
    assert error_of(answer)["field"] == "factor"


def test_a_challenge_for_a_user_without_factors_says_so(api: httpx.Client) -> None:
    user_id = new_user_id()
    api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
    answer = api.post("/v1/challenges", json={"user_id": user_id, "factor": "auto"})
    assert answer.status_code == 409
    assert error_of(answer)["code"] == "factor_not_enrolled"


def test_an_invalid_phone_number_is_refused_with_a_human_message(api: httpx.Client) -> None:
    user_id = new_user_id()
    api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
    for phone in ["+1 200 555 0123", "hello", "12345"]:
        answer = api.post(f"/v1/users/{user_id}/factors/sms", json={"phone": phone})
        assert answer.status_code == 422
        error = error_of(answer)
        assert error["code"] == "invalid_phone"
        assert phone not in str(error["message"])
    assert api.get(f"/v1/users/{user_id}/factors").json() == []


def test_too_many_challenges_for_one_user_are_rate_limited(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = new_user_id()
    api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
    body = api.post(f"/v1/users/{user_id}/factors/totp").json()
    api.post(
        f"/v1/users/{user_id}/factors/{body['factor_id']}/activate",
        json={"code": pyotp.TOTP(body["secret"]).at(clock.now())},
    )
    statuses = [
        api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"}).status_code
        for _ in range(11)
    ]
    assert statuses == [201] * 10 + [429]
    limited = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"})
    assert error_of(limited)["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0


def test_health_and_readiness_answer(anonymous: httpx.Client) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok", "database": "ok"}


def test_the_openapi_schema_lists_the_contract_paths(anonymous: httpx.Client) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    for path in [
        "/v1/users/{user_id}",
        "/v1/users/{user_id}/factors/totp",
        "/v1/users/{user_id}/factors/sms",
        "/v1/users/{user_id}/factors/{factor_id}/activate",
        "/v1/preauth",
        "/v1/challenges",
        "/v1/challenges/{challenge_id}",
        "/v1/challenges/{challenge_id}/verify",
        "/v1/challenges/{challenge_id}/resend",
        "/v1/firms/{firm_id}/invitations",
        "/v1/firms/{firm_id}/invitations/{user_id}",
        "/healthz",
        "/readyz",
    ]:
        assert path in paths
