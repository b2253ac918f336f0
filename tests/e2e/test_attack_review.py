"""Findings of the outside attack review, each tried again over real HTTP.

Every test sends what the review sent (scaled down where a flood is needed) and checks the
contract's answer and that nothing was stored, sent or counted that should not have been.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import httpx
import pyotp
import pytest

from tests.e2e.test_login_flows import create_user, enroll_totp, last_code
from tests.fixtures.pipeline import new_user_id

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis

    from mfa_pipeline.bootstrap import Container
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.pipeline import ApiServer

US_MOBILE = "+12015550123"
UK_MOBILE = "+447400123456"
SATELLITE = "+881612345678"  # Global Mobile Satellite System (Iridium's range)
SCOPED_BREAKER = 6
BASE_SETTINGS: dict[str, Any] = {
    "sms_breaker_scoped_per_minute": SCOPED_BREAKER,
    "backup_code_workers": 1,
    "backup_code_queue": 1,
}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The module's settings, plus a test's own through indirect parametrization."""
    return {**BASE_SETTINGS, **getattr(request, "param", {})}


def error_of(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


def enroll_sms(api: httpx.Client, user_id: str, phone: str) -> httpx.Response:
    return api.post(f"/v1/users/{user_id}/factors/sms", json={"phone": phone})


# --- 6: integers in queries and bodies are bounded -------------------------------------------


@pytest.mark.parametrize(
    "before", ["99999999999999999999999", str(2**63), str(2**64 + 1), "0", "-1"]
)
def test_an_audit_cursor_beyond_a_64_bit_id_is_an_invalid_request_not_a_500(
    api: httpx.Client, before: str
) -> None:
    user_id = create_user(api)
    answer = api.get(f"/v1/users/{user_id}/audit", params={"before": before})
    assert answer.status_code == 422, answer.text
    assert error_of(answer) | {"code": "invalid_request", "field": "before"} == error_of(answer)
    assert api.get(f"/v1/users/{user_id}/audit").status_code == 200  # the server is still fine


def test_the_largest_64_bit_audit_cursor_is_answered(api: httpx.Client) -> None:
    user_id = create_user(api)
    answer = api.get(f"/v1/users/{user_id}/audit", params={"before": str(2**63 - 1)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == user_id


def _integers(schema: dict[str, Any], components: dict[str, Any], path: str) -> Iterator[tuple]:
    """(path, schema) of every integer in a request schema, through refs, unions and objects."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        yield from _integers(components[name], components, path)
        return
    if schema.get("type") == "integer":
        yield path, schema
    for union in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(union, []):
            yield from _integers(option, components, path)
    for name, prop in schema.get("properties", {}).items():
        yield from _integers(prop, components, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _integers(schema["items"], components, f"{path}[]")


def test_every_integer_a_request_can_carry_has_bounds(api_server: ApiServer) -> None:
    spec = api_server.app.openapi()
    components = spec.get("components", {}).get("schemas", {})
    found = []
    for route, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                found += _integers(
                    parameter["schema"], components, f"{method} {route} {parameter['name']}"
                )
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                found += _integers(media["schema"], components, f"{method} {route} body")
    assert found  # `limit`, `before`, the push `timestamp`
    unbounded = [
        path for path, schema in found if "maximum" not in schema or "minimum" not in schema
    ]
    assert unbounded == []
    assert all(schema["maximum"] <= 2**63 - 1 for _, schema in found)


# --- 7: a chunked body over the limit is 413 like one with Content-Length ----------------------


def test_an_oversize_chunked_body_is_refused_as_too_large(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"user_id": "'
        for _ in range(8):
            yield b"a" * 16384
        yield b'"}'

    answer = api.post(
        "/v1/challenges", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413, answer.text
    assert error_of(answer)["code"] == "payload_too_large"


def test_a_small_chunked_body_is_still_read(api: httpx.Client) -> None:
    user_id = create_user(api)
    parts = [b'{"user_', b'id": "', user_id.encode(), b'"}']
    answer = api.post(
        "/v1/preauth", content=iter(parts), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] in {"bypass", "enroll"}


# --- 8: no phone number, block or country in Redis ---------------------------------------------


def test_no_phone_number_block_or_country_is_readable_in_redis(
    api: httpx.Client, redis_client: redis.Redis, key_prefix: str
) -> None:
    user_id = create_user(api)
    assert enroll_sms(api, user_id, US_MOBILE).status_code == 201
    assert enroll_sms(api, create_user(api), UK_MOBILE).status_code == 201
    keys = list(redis_client.scan_iter(f"{key_prefix}:*"))
    sms_keys = [k for k in keys if "{sms}" in k]
    assert sms_keys  # the limits did count the two SMS
    stored = " ".join(keys)
    for key in sms_keys:
        if redis_client.type(key) == "zset":
            stored += " ".join(redis_client.zrange(key, 0, -1))
        else:
            stored += " " + str(redis_client.get(key))
    for secret in ("2015550123", "201555", "7400123456", "740012", ":US", ":GB", ":+1", ":+44"):
        assert secret not in stored


# --- 9: satellite and other non-geographic numbers ---------------------------------------------


@pytest.mark.parametrize("phone", [SATELLITE, "+8823421234"])
def test_a_satellite_or_other_non_geographic_number_is_refused_with_a_reason(
    api: httpx.Client, redis_client: redis.Redis, key_prefix: str, phone: str
) -> None:
    user_id = create_user(api)
    answer = enroll_sms(api, user_id, phone)
    assert answer.status_code == 422, answer.text
    error = error_of(answer)
    assert (error["code"], error["reason"]) == ("invalid_phone", "non_geographic")
    assert "non-geographic" in error["message"]
    assert phone[1:] not in error["message"]
    assert api.get(f"/v1/users/{user_id}/factors").json() == []
    assert not list(redis_client.scan_iter(f"{key_prefix}:*{{sms}}*"))  # nothing counted


@pytest.mark.parametrize(
    "settings_overrides", [{"sms_allow_non_geographic": True}], indirect=True, ids=["allowed"]
)
def test_a_deployment_can_allow_non_geographic_numbers(api: httpx.Client) -> None:
    answer = enroll_sms(api, create_user(api), SATELLITE)
    assert answer.status_code == 201, answer.text
    assert answer.json()["phone_e164"] == SATELLITE


# --- 11: at most three pending SMS factors per user --------------------------------------------


@pytest.mark.usefixtures("worker")
def test_a_fourth_pending_number_replaces_the_oldest_which_can_no_longer_be_activated(
    api: httpx.Client, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    factor_ids = []
    for n in range(5):
        clock.advance(1)
        created = enroll_sms(api, user_id, f"+1201555{n:04d}")
        assert created.status_code == 201, created.text
        factor_ids.append(created.json()["factor_id"])
    listed = api.get(f"/v1/users/{user_id}/factors").json()
    assert sorted(f["factor_id"] for f in listed) == sorted(factor_ids[2:])
    assert {f["status"] for f in listed} == {"pending"}
    # The first number's own code, as the phone received it: its factor is gone.
    sent = fake_twilio.wait_for_messages(5, timeout=10)
    first = next(i for i, m in enumerate(sent) if m["To"] == "+12015550000")
    code = last_code(fake_twilio, first + 1)
    refused = api.post(f"/v1/users/{user_id}/factors/{factor_ids[0]}/activate", json={"code": code})
    assert refused.status_code == 404, refused.text
    events = [e["event"] for e in api.get(f"/v1/users/{user_id}/audit").json()["events"]]
    assert events.count("factor_removed") == 2


# --- 12: backup-code generation is limited and does not starve other requests -----------------


def test_backup_code_sets_are_limited_per_user_and_the_current_set_keeps_working(
    api: httpx.Client,
) -> None:
    user_id = create_user(api)
    for _ in range(5):
        answer = api.post(f"/v1/users/{user_id}/backup-codes")
        assert answer.status_code == 201, answer.text
    kept = answer.json()["codes"]
    refused = api.post(f"/v1/users/{user_id}/backup-codes")
    assert refused.status_code == 429, refused.text
    assert error_of(refused)["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    assert api.get(f"/v1/users/{user_id}").json()["backup_codes_remaining"] == 10
    login = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "backup_code", "code": kept[0]}
    )
    assert login.status_code == 201, login.text
    assert login.json()["status"] == "verified"


def test_concurrent_generations_beyond_the_hashing_pool_are_refused_and_healthz_answers(
    api: httpx.Client, api_server: ApiServer
) -> None:
    users = [create_user(api) for _ in range(12)]
    start = threading.Barrier(len(users) + 1)
    answers: dict[str, httpx.Response] = {}
    health: list[tuple[int, int]] = []  # (status, generations finished at that moment)
    lock = threading.Lock()

    def generate(user_id: str) -> None:
        with httpx.Client(base_url=api_server.url, headers=dict(api.headers), timeout=60) as c:
            start.wait()
            answer = c.post(f"/v1/users/{user_id}/backup-codes")
        with lock:
            answers[user_id] = answer

    def probe() -> None:
        with httpx.Client(base_url=api_server.url, timeout=60) as c:
            start.wait()
            while True:
                with lock:
                    finished = len(answers)
                if finished == len(users):
                    return
                status = c.get("/healthz").status_code
                with lock:
                    health.append((status, len(answers)))

    threads = [threading.Thread(target=generate, args=(u,)) for u in users]
    threads.append(threading.Thread(target=probe))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    statuses = sorted(a.status_code for a in answers.values())
    assert 201 in statuses
    assert 503 in statuses  # 1 running + 1 waiting at most; the rest refused at once
    assert set(statuses) <= {201, 503}
    for user_id, answer in answers.items():
        if answer.status_code == 503:
            assert error_of(answer)["code"] == "unavailable"
            assert answer.headers["Retry-After"] == "1"
            assert api.get(f"/v1/users/{user_id}").json()["backup_codes_remaining"] == 0
    assert any(status == 200 and done < len(users) for status, done in health)
    assert api.get("/healthz").status_code == 200


# --- 13: only the contract's forms are codes; malformed ones cost no attempt -------------------


@pytest.fixture
def totp_login(api: httpx.Client, clock: FrozenClock) -> tuple[str, str, pyotp.TOTP]:
    user_id = create_user(api)
    totp = enroll_totp(api, clock, user_id)
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp"})
    assert created.status_code == 201, created.text
    return user_id, created.json()["challenge_id"], totp


MALFORMED = [123456, 123456.0, "1-2-3-4-5-6", "-123456", "123456-", "123--456", "12-3456", True]


@pytest.mark.parametrize("code", MALFORMED, ids=repr)
def test_a_malformed_code_is_an_invalid_code_and_costs_no_attempt(
    api: httpx.Client, clock: FrozenClock, totp_login: tuple[str, str, pyotp.TOTP], code: object
) -> None:
    _, challenge_id, totp = totp_login
    for _ in range(6):  # more than the attempts a challenge has
        answer = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code})
        assert answer.status_code == 400, answer.text
        assert error_of(answer)["code"] == "invalid_code"
        assert "attempts_remaining" not in error_of(answer)
    assert api.get(f"/v1/challenges/{challenge_id}").json()["attempts_remaining"] == 5
    right = totp.at(clock.now())
    verified = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": right})
    assert verified.status_code == 200, verified.text


@pytest.mark.parametrize("typed", ["{}{}", "{} {}", "{}-{}", " {}{} "])
def test_the_three_forms_of_the_contract_are_codes(
    api: httpx.Client, clock: FrozenClock, totp_login: tuple[str, str, pyotp.TOTP], typed: str
) -> None:
    _, challenge_id, totp = totp_login
    code = totp.at(clock.now())
    answer = api.post(
        f"/v1/challenges/{challenge_id}/verify", json={"code": typed.format(code[:3], code[3:])}
    )
    assert answer.status_code == 200, answer.text


def test_a_code_as_a_number_is_an_invalid_code_on_every_route_that_takes_one(
    api: httpx.Client, clock: FrozenClock
) -> None:
    user_id = create_user(api)
    pending = api.post(f"/v1/users/{user_id}/factors/totp").json()
    activate = api.post(
        f"/v1/users/{user_id}/factors/{pending['factor_id']}/activate", json={"code": 123456}
    )
    assert (activate.status_code, error_of(activate)["code"]) == (400, "invalid_code")
    totp = pyotp.TOTP(pending["secret"])
    activated = api.post(
        f"/v1/users/{user_id}/factors/{pending['factor_id']}/activate",
        json={"code": totp.at(clock.now())},
    )
    assert activated.status_code == 200, activated.text
    clock.advance(30)
    at_once = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": 123456}
    )
    assert (at_once.status_code, error_of(at_once)["code"]) == (400, "invalid_code")
    missing = api.post(f"/v1/users/{user_id}/factors/{pending['factor_id']}/activate", json={})
    assert (missing.status_code, error_of(missing)["field"]) == (422, "code")


# --- 14: small ones ---------------------------------------------------------------------------


def test_the_fourth_resend_is_refused_with_a_retry_after(
    api: httpx.Client, clock: FrozenClock
) -> None:
    created = enroll_sms(api, create_user(api), US_MOBILE)
    challenge_id = created.json()["challenge_id"]
    for _ in range(3):
        clock.advance(31)
        assert api.post(f"/v1/challenges/{challenge_id}/resend").status_code == 202
    clock.advance(31)
    refused = api.post(f"/v1/challenges/{challenge_id}/resend")
    assert refused.status_code == 429, refused.text
    assert error_of(refused)["code"] == "too_many_resends"
    expires_in = 600 - 4 * 31  # the challenge's life left: a new login is the way on
    assert 0 < int(refused.headers["Retry-After"]) <= expires_in


@pytest.mark.parametrize(
    "settings_overrides", [{"limit_challenges_per_user": "2/600"}], indirect=True, ids=["2"]
)
def test_an_enrollment_over_the_per_user_limit_says_so_and_not_login_attempts(
    api: httpx.Client,
) -> None:
    user_id = create_user(api)
    for n in range(2):
        assert enroll_sms(api, user_id, f"+1201555{n:04d}").status_code == 201
    refused = enroll_sms(api, user_id, "+12015550009")
    assert refused.status_code == 429, refused.text
    message = error_of(refused)["message"]
    assert "login" not in message
    assert "number" in message
    assert int(refused.headers["Retry-After"]) > 0


@pytest.mark.parametrize("user_id", [".", ".."])
def test_a_user_id_that_is_a_dot_segment_cannot_be_created(api: httpx.Client, user_id: str) -> None:
    encoded = user_id.replace(".", "%2E")
    answer = api.put(f"/v1/users/{encoded}", json={"firm_id": "firm-1"})
    assert answer.status_code == 422, answer.text
    assert error_of(answer)["code"] == "invalid_request"
    preauth = api.post("/v1/preauth", json={"user_id": user_id})
    assert (preauth.status_code, error_of(preauth)["field"]) == (422, "user_id")


def test_ids_with_dots_that_are_not_dot_segments_still_work(api: httpx.Client) -> None:
    for user_id in (".a", "a.", "...", f"{new_user_id()}.example"):
        answer = api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-1"})
        assert answer.status_code == 200, (user_id, answer.text)
        assert api.get(f"/v1/users/{user_id}").json()["user_id"] == user_id


# --- 15: the SMS circuit breaker is scoped ------------------------------------------------------


def test_a_surge_through_one_application_to_one_country_leaves_other_sms_working(
    api: httpx.Client, grow: httpx.Client, container: Container
) -> None:
    for n in range(SCOPED_BREAKER):
        assert enroll_sms(api, create_user(api), f"+1201555{n:04d}").status_code == 201
    tripped = enroll_sms(api, create_user(api), "+12025550100")
    assert tripped.status_code == 503, tripped.text
    error = error_of(tripped)
    assert (error["code"], error["breaker"]) == ("sms_unavailable", "application_country")
    assert int(tripped.headers["Retry-After"]) > 0
    # The same country through another application, and another country through this one.
    assert enroll_sms(grow, create_user(grow), "+12125550100").status_code == 201
    assert enroll_sms(api, create_user(api), UK_MOBILE).status_code == 201
    again = enroll_sms(api, create_user(api), "+13055550100")
    assert (again.status_code, error_of(again)["breaker"]) == (503, "application_country")
    assert container.settings.sms_breaker_per_minute > SCOPED_BREAKER + 2  # global stayed shut
