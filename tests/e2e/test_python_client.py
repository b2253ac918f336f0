"""The Python client against the real service: HTTP server, Redis, SQLite, Celery worker.

Retries are observed through the client's injectable `sleep`, which records each delay before
sleeping it. The rate limits' windows live in Redis (its own clock), so the 429 test uses a
3-second window and really waits out its `Retry-After`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pyotp
import pytest

from mfa_pipeline.adapters.outbox import OutboxReader
from mfa_pipeline.cli.device import SimulatedDevice
from mfa_pipeline.client import (
    NO_RETRIES,
    ActorMfaRequiredError,
    AsyncMfaClient,
    ChallengeCompletedError,
    ChallengeExpiredError,
    InvalidCodeError,
    InvalidPhoneError,
    InvalidRequestError,
    MfaClient,
    MfaConnectionError,
    NotFoundError,
    RateLimitedError,
    RequestContext,
    RetryPolicy,
    TooManyAttemptsError,
    UnauthenticatedError,
    WaitTimeoutError,
)
from tests.e2e.test_login_flows import PHONE, last_code
from tests.fixtures.pipeline import MANAGE_KEY, new_user_id, wait_until
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mfa_pipeline.config import Settings
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.pipeline import ApiServer

pytestmark = pytest.mark.usefixtures("worker")

LIMITED_IP = "198.51.100.99"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Pushes go to the outbox, where the simulated phone reads them; the per-IP window is
    # small and short so one test can run into it and wait it out (the others send no IP).
    return {"push_provider": "outbox", "limit_challenges_per_ip": "2/3"}


@pytest.fixture
def mfa(api_server: ApiServer) -> Iterator[MfaClient]:
    with MfaClient(api_server.url, api_key=MANAGE_KEY, timeout=10) as client:
        yield client


def new_user(mfa: MfaClient, firm_id: str | None = "firm-client", role: str | None = None) -> str:
    user_id = new_user_id()
    mfa.put_user(user_id, firm_id=firm_id, role=role)
    return user_id


def with_totp(mfa: MfaClient, clock: FrozenClock, user_id: str) -> pyotp.TOTP:
    enrollment = mfa.enroll_totp(user_id)
    assert enrollment.status == "pending"
    assert enrollment.qr_svg.startswith("<svg")
    totp = pyotp.TOTP(enrollment.secret)
    assert mfa.activate_factor(user_id, enrollment.factor_id, totp.at(clock.now())).status == (
        "active"
    )
    clock.advance(30)  # the activation code's step is spent
    return totp


def test_the_client_enrolls_totp_and_logs_in_in_one_round_trip(
    mfa: MfaClient, clock: FrozenClock
) -> None:
    user_id = new_user(mfa)
    totp = with_totp(mfa, clock, user_id)
    user = mfa.get_user(user_id)
    assert user.mfa_enabled
    assert [f.type for f in user.factors] == ["totp"]
    assert mfa.preauth(user_id).result == "auth"

    challenge = mfa.create_challenge(
        user_id,
        factor="totp",
        code=totp.at(clock.now()),
        remember_device=True,
        context=RequestContext(ip="203.0.113.9", user_agent="pytest"),
    )
    assert challenge.status == "verified"
    assert challenge.trusted_token
    assert mfa.preauth(user_id, trusted_token=challenge.trusted_token).result == "allow"
    mfa.revoke_trusted_sessions(user_id)
    assert mfa.preauth(user_id, trusted_token=challenge.trusted_token).result == "auth"


def test_the_async_client_enrolls_sms_and_verifies_the_code_the_phone_got(
    api_server: ApiServer, fake_twilio: FakeTwilio
) -> None:
    async def scenario() -> None:
        async with AsyncMfaClient(api_server.url, api_key=MANAGE_KEY) as mfa:
            user_id = new_user_id()
            await mfa.put_user(user_id, firm_id="firm-test")
            enrollment = await mfa.enroll_sms(user_id, PHONE)
            assert enrollment.phone_e164 == "+12015550123"
            code = await asyncio.to_thread(last_code, fake_twilio, 1)
            await mfa.activate_factor(user_id, enrollment.factor_id, code)
            [factor] = await mfa.list_factors(user_id)
            assert factor.phone_masked is not None
            assert factor.phone_masked.endswith("23")

            challenge = await mfa.create_challenge(user_id, factor="sms")
            login_code = await asyncio.to_thread(last_code, fake_twilio, 2)
            verified = await mfa.verify(challenge.challenge_id, login_code)
            assert verified.status == "verified"
            with pytest.raises(ChallengeCompletedError) as again:
                await mfa.verify(challenge.challenge_id, login_code)
            assert again.value.status == 409

    asyncio.run(scenario())


def test_a_wrong_code_raises_invalid_code_with_the_attempts_left_and_a_lock_is_final(
    mfa: MfaClient, clock: FrozenClock
) -> None:
    user_id = new_user(mfa)
    totp = with_totp(mfa, clock, user_id)
    challenge = mfa.create_challenge(user_id, factor="totp")
    wrong = f"{(int(totp.at(clock.now())) + 1) % 1_000_000:06d}"
    left = []
    for _ in range(4):
        with pytest.raises(InvalidCodeError) as refused:
            mfa.verify(challenge.challenge_id, wrong)
        left.append(refused.value.attempts_remaining)
    assert left == [4, 3, 2, 1]
    with pytest.raises(TooManyAttemptsError) as locked:  # a 429 that is never retried
        mfa.verify(challenge.challenge_id, wrong)
    assert locked.value.error_code == "too_many_attempts"
    assert mfa.get_challenge(challenge.challenge_id).status == "locked"


def test_a_malformed_code_costs_no_attempt(mfa: MfaClient, clock: FrozenClock) -> None:
    user_id = new_user(mfa)
    with_totp(mfa, clock, user_id)
    challenge = mfa.create_challenge(user_id, factor="totp")
    with pytest.raises(InvalidCodeError) as refused:
        mfa.verify(challenge.challenge_id, "12345x")
    assert refused.value.attempts_remaining is None
    assert mfa.get_challenge(challenge.challenge_id).attempts_remaining == 5


def test_contract_errors_arrive_as_typed_exceptions_with_their_codes(
    mfa: MfaClient, api_server: ApiServer, clock: FrozenClock
) -> None:
    with pytest.raises(NotFoundError) as missing:
        mfa.get_user(new_user_id())
    assert (missing.value.status, missing.value.error_code) == (404, "not_found")

    with (
        MfaClient(api_server.url, api_key="not-a-key") as stranger,
        pytest.raises(UnauthenticatedError) as refused,
    ):
        stranger.get_user("anyone")
    assert refused.value.status == 401

    user_id = new_user(mfa)
    with pytest.raises(InvalidPhoneError) as bad_phone:
        mfa.enroll_sms(user_id, "12")
    assert bad_phone.value.status == 422

    with pytest.raises(InvalidRequestError) as bad_body:
        mfa.create_challenge(user_id, factor="carrier-pigeon")  # type: ignore[arg-type]
    assert bad_body.value.field == "factor"

    with_totp(mfa, clock, user_id)
    challenge = mfa.create_challenge(user_id, factor="totp")
    clock.advance(301)
    with pytest.raises(ChallengeExpiredError):
        mfa.verify(challenge.challenge_id, "123456")


def test_ids_with_reserved_characters_travel_as_one_path_segment(mfa: MfaClient) -> None:
    user_id = f"ana+{new_user_id()}@example.com"
    assert mfa.put_user(user_id, firm_id="firm-test").user_id == user_id
    assert mfa.get_user(user_id).user_id == user_id


def test_a_rate_limited_call_sleeps_what_retry_after_says_and_then_succeeds(
    api_server: ApiServer, mfa: MfaClient, clock: FrozenClock
) -> None:
    user_id = new_user(mfa)
    with_totp(mfa, clock, user_id)
    context = RequestContext(ip=LIMITED_IP)
    for _ in range(2):
        mfa.create_challenge(user_id, factor="totp", context=context)

    with (
        MfaClient(api_server.url, api_key=MANAGE_KEY, retry=NO_RETRIES) as impatient,
        pytest.raises(RateLimitedError) as limited,
    ):
        impatient.create_challenge(user_id, factor="totp", context=context)
    assert limited.value.status == 429
    assert limited.value.retry_after in {1, 2, 3}

    told: list[str] = []
    slept: list[float] = []

    def note_retry_after(response: httpx.Response) -> None:
        if response.status_code == 429:
            told.append(response.headers["Retry-After"])

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    http = httpx.Client(
        base_url=api_server.url,
        headers={"Authorization": f"Bearer {MANAGE_KEY}"},
        event_hooks={"response": [note_retry_after]},
    )
    with MfaClient(api_server.url, http=http, sleep=sleep) as patient:
        challenge = patient.create_challenge(user_id, factor="totp", context=context)
    assert challenge.status == "pending"
    assert told  # it was refused first
    assert slept == [float(t) for t in told]


def test_a_retry_after_beyond_the_policy_is_raised_rather_than_slept(
    api_server: ApiServer, mfa: MfaClient, clock: FrozenClock
) -> None:
    user_id = new_user(mfa)
    with_totp(mfa, clock, user_id)
    context = RequestContext(ip=LIMITED_IP)
    for _ in range(2):
        mfa.create_challenge(user_id, factor="totp", context=context)
    slept: list[float] = []
    policy = RetryPolicy(max_retry_after=0.5)
    with (
        MfaClient(api_server.url, api_key=MANAGE_KEY, retry=policy, sleep=slept.append) as c,
        pytest.raises(RateLimitedError),
    ):
        c.create_challenge(user_id, factor="totp", context=context)
    assert slept == []


def test_a_service_that_cannot_be_reached_is_retried_with_backoff_then_reported() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_retries=3, backoff=0.1, max_backoff=1.0)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with (
        MfaClient(url, api_key="k", retry=policy, sleep=slept.append) as client,
        pytest.raises(MfaConnectionError),
    ):
        client.get_user("anyone")
    assert len(slept) == 3
    assert all(0 <= s <= cap for s, cap in zip(slept, [0.1, 0.2, 0.4], strict=True))


def register_phone(mfa: MfaClient, user_id: str) -> SimulatedDevice:
    device = SimulatedDevice.generate("Test phone")
    registered = mfa.register_push_device(user_id, **device.registration())
    assert registered.status == "active"
    device.user_id, device.device_id = user_id, registered.device_id
    return device


def test_wait_for_result_returns_as_soon_as_the_phone_approves(
    mfa: MfaClient, api_server: ApiServer, settings: Settings
) -> None:
    user_id = new_user(mfa)
    device = register_phone(mfa, user_id)
    challenge = mfa.create_challenge(user_id)  # auto: push, the user has a phone
    assert challenge.factor == "push"
    assert challenge.number_match is not None
    wait_until(lambda: device.pushes(settings.outbox_path))

    def phone_answers() -> None:
        wait_until(lambda: api_server.waiters() == 1)
        answer = device.answer(challenge.challenge_id, "approve", number=challenge.number_match)
        mfa.push_response(**answer)

    phone = threading.Thread(target=phone_answers)
    phone.start()
    result = mfa.wait_for_result(challenge.challenge_id, timeout=20)
    phone.join(10)
    assert result.status == "approved"


def test_the_async_wait_for_result_sees_a_denial(
    mfa: MfaClient, api_server: ApiServer, settings: Settings
) -> None:
    user_id = new_user(mfa)
    device = register_phone(mfa, user_id)
    challenge = mfa.create_challenge(user_id, factor="push")
    wait_until(lambda: OutboxReader(settings.outbox_path).messages(channel="push"))

    async def scenario() -> str:
        async with AsyncMfaClient(api_server.url, api_key=MANAGE_KEY) as client:
            waiting = asyncio.create_task(client.wait_for_result(challenge.challenge_id, 20))
            await asyncio.to_thread(wait_until, lambda: api_server.waiters() == 1)
            answer = device.answer(challenge.challenge_id, "deny")
            assert (await client.push_response(**answer)).status == "denied"
            return (await waiting).status

    assert asyncio.run(scenario()) == "denied"


def test_wait_for_result_gives_up_after_its_timeout_with_the_last_state(
    mfa: MfaClient, clock: FrozenClock
) -> None:
    user_id = new_user(mfa)
    with_totp(mfa, clock, user_id)
    challenge = mfa.create_challenge(user_id, factor="totp")
    with pytest.raises(WaitTimeoutError) as waited:
        mfa.wait_for_result(challenge.challenge_id, timeout=0.3)
    assert waited.value.challenge.status == "pending"


def test_backup_codes_come_as_json_or_as_the_printable_file(
    mfa: MfaClient, clock: FrozenClock
) -> None:
    user_id = new_user(mfa)
    with_totp(mfa, clock, user_id)
    codes = mfa.generate_backup_codes(user_id).codes
    assert len(codes) == 10
    text = mfa.backup_codes_file(user_id)  # a new set: the JSON one stops working
    file_codes = [line for line in text.splitlines() if len(line) == 9 and line[4] == "-"]
    assert len(file_codes) == 10
    with pytest.raises(InvalidCodeError):
        mfa.create_challenge(user_id, factor="backup_code", code=codes[0])
    used = mfa.create_challenge(user_id, factor="backup_code", code=file_codes[0].upper())
    assert used.status == "verified"
    assert used.backup_codes_remaining == 9


def test_an_administrator_sets_the_policy_and_resets_a_user(
    mfa: MfaClient, clock: FrozenClock
) -> None:
    firm = f"firm-{new_user_id()}"
    admin = new_user(mfa, firm, role="admin")
    assert mfa.get_user(admin).role == "admin"
    with pytest.raises(ActorMfaRequiredError) as refused:
        mfa.put_firm_policy(firm, actor_id=admin, require_mfa=True)
    assert refused.value.status == 409
    with_totp(mfa, clock, admin)
    policy = mfa.put_firm_policy(firm, actor_id=admin, require_mfa=True)
    assert policy.require_mfa
    assert mfa.get_firm_policy(firm).updated_by == admin

    user_id = new_user(mfa, firm)
    assert mfa.preauth(user_id).result == "enroll"
    with_totp(mfa, clock, user_id)
    reset = mfa.reset_user(user_id, actor_id=admin)
    assert reset.factors_removed == 1
    assert mfa.get_user(user_id).enrollment_required
    events = [e.event for e in mfa.audit(user_id, limit=10).events]
    assert events[0] == "mfa_reset"
