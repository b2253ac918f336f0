"""SMS pumping (toll fraud) and SMS bombing over real HTTP: each attack meets a clear error and
leaves nothing behind (no factor, no challenge, no SMS at the provider).

The limits are small here so that an attack fits in a test; each test has its own key prefix,
hence its own counters and its own breaker.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import pyotp
import pytest
from structlog.testing import capture_logs

from tests.fixtures.pipeline import new_user_id

if TYPE_CHECKING:
    import httpx
    import redis

    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio

pytestmark = pytest.mark.usefixtures("worker")

VICTIM = "+12015550123"
NUMBER_LIMIT = 3
PREFIX_LIMIT = 4
COUNTRY_LIMIT = 6
BREAKER_PER_MINUTE = 8


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "sms_limit_per_number": f"{NUMBER_LIMIT}/3600",
        "sms_limit_per_prefix": f"{PREFIX_LIMIT}/3600",
        "sms_limit_per_country": f"{COUNTRY_LIMIT}/3600",
        "sms_breaker_per_minute": BREAKER_PER_MINUTE,
        "sms_breaker_cooldown_seconds": 120,
    }


def new_user(api: httpx.Client) -> str:
    user_id = new_user_id()
    assert api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"}).status_code == 200
    return user_id


def enroll(api: httpx.Client, phone: str, user_id: str | None = None) -> httpx.Response:
    return api.post(f"/v1/users/{user_id or new_user(api)}/factors/sms", json={"phone": phone})


def enroll_active(api: httpx.Client, fake: FakeTwilio, phone: str) -> str:
    """A user whose SMS factor is confirmed (one SMS spent); returns the user id."""
    user_id = new_user(api)
    sent = len(fake.messages)
    created = enroll(api, phone, user_id)
    assert created.status_code == 201, created.text
    body = fake.wait_for_messages(sent + 1)[sent]["Body"]
    code = re.search(r"\b(\d{6})\b", body)
    assert code is not None
    activated = api.post(
        f"/v1/users/{user_id}/factors/{created.json()['factor_id']}/activate",
        json={"code": code.group(1)},
    )
    assert activated.status_code == 200, activated.text
    return user_id


def challenge_keys(redis_client: redis.Redis, key_prefix: str) -> int:
    return len(list(redis_client.scan_iter(f"{key_prefix}:*:ch:*")))


def settled(fake: FakeTwilio, count: int) -> int:
    """What the provider received once the worker is done (waiting for `count`, then a beat)."""
    fake.wait_for_messages(count)
    time.sleep(0.3)
    return len(fake.messages)


def error_of(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str)
    return dict(body["error"])


def test_bombing_one_number_through_many_accounts_stops_at_the_number_limit(
    api: httpx.Client, fake_twilio: FakeTwilio, redis_client: redis.Redis, key_prefix: str
) -> None:
    for _ in range(NUMBER_LIMIT):
        assert enroll(api, VICTIM).status_code == 201
    keys_before = challenge_keys(redis_client, key_prefix)
    attacker = new_user(api)
    refused = enroll(api, VICTIM, attacker)
    assert refused.status_code == 429
    assert error_of(refused)["code"] == "rate_limited"
    assert error_of(refused)["limit"] == "sms_number"
    assert int(refused.headers["Retry-After"]) > 3500
    assert "0123" not in refused.text  # the refusal does not echo the number
    assert api.get(f"/v1/users/{attacker}/factors").json() == []
    assert challenge_keys(redis_client, key_prefix) == keys_before
    assert settled(fake_twilio, NUMBER_LIMIT) == NUMBER_LIMIT


def test_login_challenges_to_one_number_stop_at_the_number_limit(
    api: httpx.Client, fake_twilio: FakeTwilio, redis_client: redis.Redis, key_prefix: str
) -> None:
    user_id = enroll_active(api, fake_twilio, VICTIM)
    for _ in range(NUMBER_LIMIT - 1):
        made = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"})
        assert made.status_code == 201
    keys_before = challenge_keys(redis_client, key_prefix)
    for factor in ("sms", "auto"):
        refused = api.post("/v1/challenges", json={"user_id": user_id, "factor": factor})
        assert refused.status_code == 429
        assert error_of(refused)["limit"] == "sms_number"
    assert challenge_keys(redis_client, key_prefix) == keys_before
    assert settled(fake_twilio, NUMBER_LIMIT) == NUMBER_LIMIT


def test_resends_count_against_the_number_and_a_hammered_resend_spends_nothing(
    api: httpx.Client, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    user_id = enroll_active(api, fake_twilio, VICTIM)
    challenge_id = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"}).json()[
        "challenge_id"
    ]
    for _ in range(20):  # too soon: refused by the resend rule, before any SMS budget is used
        assert api.post(f"/v1/challenges/{challenge_id}/resend").status_code == 429
    clock.advance(31)
    assert api.post(f"/v1/challenges/{challenge_id}/resend").status_code == 202
    assert settled(fake_twilio, NUMBER_LIMIT) == NUMBER_LIMIT
    clock.advance(31)
    before = api.get(f"/v1/challenges/{challenge_id}").json()
    refused = api.post(f"/v1/challenges/{challenge_id}/resend")
    assert refused.status_code == 429
    assert error_of(refused)["limit"] == "sms_number"
    after = api.get(f"/v1/challenges/{challenge_id}").json()
    assert after == before  # the old code still works: nothing changed
    assert settled(fake_twilio, NUMBER_LIMIT) == NUMBER_LIMIT


def test_pumping_many_numbers_of_one_block_stops_at_the_prefix_limit(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    block = [f"+1201555{n:04d}" for n in range(100, 100 + PREFIX_LIMIT + 3)]
    answers = [enroll(api, number) for number in block]
    assert [a.status_code for a in answers] == [201] * PREFIX_LIMIT + [429] * 3
    assert {error_of(a)["limit"] for a in answers[PREFIX_LIMIT:]} == {"sms_prefix"}
    assert enroll(api, "+12025550100").status_code == 201  # another block is still served
    assert settled(fake_twilio, PREFIX_LIMIT + 1) == PREFIX_LIMIT + 1


def test_pumping_many_blocks_of_one_country_stops_at_the_country_limit(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    areas = (201, 202, 212, 213, 305, 312, 404, 415)
    answers = [enroll(api, f"+1{area}5550100") for area in areas]
    assert [a.status_code for a in answers] == [201] * COUNTRY_LIMIT + [429] * 2
    assert {error_of(a)["limit"] for a in answers[COUNTRY_LIMIT:]} == {"sms_country"}
    assert enroll(api, "+447400123456").status_code == 201  # another country is still served
    assert settled(fake_twilio, COUNTRY_LIMIT + 1) == COUNTRY_LIMIT + 1


def test_the_circuit_breaker_refuses_new_sms_with_one_alert_and_other_factors_still_work(
    api: httpx.Client, fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    # Spread across countries and blocks so that only the deployment-wide count can trip.
    numbers = [f"+1{area}5550100" for area in (201, 202, 212, 213, 305)]
    numbers += ["+447400123456", "+447912345678", "+33612345678"]
    for number in numbers:
        assert enroll(api, number).status_code == 201
    totp_user = new_user(api)
    secret = api.post(f"/v1/users/{totp_user}/factors/totp").json()
    totp = pyotp.TOTP(secret["secret"])
    with capture_logs() as logs:
        refused = [enroll(api, n) for n in ("+491711234567", "+34612345678", "+12135550199")]
        activated = api.post(
            f"/v1/users/{totp_user}/factors/{secret['factor_id']}/activate",
            json={"code": totp.at(clock.now())},
        )
    assert [a.status_code for a in refused] == [503, 503, 503]
    assert {error_of(a)["code"] for a in refused} == {"sms_unavailable"}
    assert all(1 <= int(a.headers["Retry-After"]) <= 120 for a in refused)
    alerts = [e for e in logs if e["event"] == "sms_circuit_open"]
    assert len(alerts) == 1
    assert alerts[0]["log_level"] == "error"
    assert activated.status_code == 200  # TOTP does not depend on SMS
    clock.advance(121)  # the cooldown ends; the window has emptied too
    assert enroll(api, "+491711234567").status_code == 201
    assert settled(fake_twilio, BREAKER_PER_MINUTE + 1) == BREAKER_PER_MINUTE + 1
