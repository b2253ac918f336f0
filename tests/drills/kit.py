"""What the fault drills share: settings for worker processes, SMS users, a stream of challenges.

Users are enrolled through the real enrollment service, but their confirmation codes go to a
recording sender and no delivery task is published, so the fake Twilio and the broker see only
the drill's own login SMS: one number per user, so `sms_per_number` tells lost from duplicated.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from mfa_pipeline.adapters.sql_migrations import upgrade
from mfa_pipeline.bootstrap import bootstrap
from mfa_pipeline.domain.challenges import RequestContext, RequestedFactor
from mfa_pipeline.ports import SmsReceipt, SmsSender
from tests.doubles.publisher import RecordingEventPublisher
from tests.fixtures.pipeline import make_settings
from tests.fixtures.twilio import TWILIO_SID, TWILIO_TOKEN

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.config import Settings
    from tests.fakes.fake_twilio import FakeTwilio

# A drill sends a hundred SMS to one number block from one IP within seconds: the creation
# and anti-pumping limits (tested elsewhere) would rightly stop it.
GENEROUS_LIMITS: dict[str, Any] = {
    "limit_challenges_per_ip": "100000/600",
    "sms_limit_per_number": "1000/3600",
    "sms_limit_per_prefix": "100000/3600",
    "sms_limit_per_country": "100000/3600",
    "sms_breaker_per_minute": 100000,
    "sms_breaker_scoped_per_minute": 100000,
}


def drill_settings(
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    twilio_url: str,
    **overrides: Any,
) -> Settings:
    """Settings for an API in this process and `mfa-pipeline worker` processes beside it."""
    values: dict[str, Any] = {
        "sms_provider": "twilio",
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_from": "+15005550006",
        "twilio_api_base_url": twilio_url,
        "twilio_timeout_seconds": 2.0,
        "log_level": "INFO",
        **GENEROUS_LIMITS,
    }
    values.update(overrides)
    settings = make_settings(tmp_path, redis_url, key_prefix, **values)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    return settings


class RecordingSmsSender(SmsSender):
    """Keeps the enrollment codes in memory (they never reach the fake Twilio)."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, *, to: str, body: str, status_callback: str | None = None) -> SmsReceipt:  # noqa: ARG002
        self.bodies.append(body)
        return SmsReceipt(provider_id="SM" + secrets.token_hex(16))


def enroll_sms_users(settings: Settings, count: int) -> dict[str, str]:
    """`count` users with an active SMS factor each, on numbers of their own: {user: E.164}."""
    sender = RecordingSmsSender()
    container = bootstrap(settings, publisher=RecordingEventPublisher(), sms_sender=sender)
    block = secrets.randbelow(90) * 100
    users: dict[str, str] = {}
    try:
        for index in range(count):
            user_id = f"drill-{secrets.token_hex(5)}"
            phone = f"+1201555{block + index:04d}"
            container.services.enrollment.put_user(user_id=user_id, firm_id="firm-test")
            enrollment = container.services.enrollment.enroll_sms(
                user_id=user_id, phone=phone, region=None
            )
            container.services.sms_delivery.deliver(challenge_id=enrollment.challenge_id, seq=0)
            found = re.search(r"\b(\d{6})\b", sender.bodies[-1])
            assert found is not None
            container.services.enrollment.activate(
                user_id=user_id, factor_id=enrollment.factor.factor_id, code=found.group(1)
            )
            users[user_id] = enrollment.phone.e164
    finally:
        container.close()
    return users


@contextlib.contextmanager
def sms_drill(settings: Settings, count: int) -> Iterator[tuple[dict[str, str], Container]]:
    """`count` enrolled SMS users and a container for the drill's API side, closed after."""
    users = enroll_sms_users(settings, count)
    container = bootstrap(settings)
    try:
        yield users, container
    finally:
        container.close()


def issue_sms_challenge(container: Container, user_id: str) -> str:
    view = container.services.challenges.issue(
        user_id=user_id, factor=RequestedFactor.SMS, context=RequestContext(ip="203.0.113.9")
    )
    return view.challenge.challenge_id


def is_settled(container: Container, challenge_id: str) -> bool:
    """Delivery is over: the SMS was sent, or the challenge failed (nothing more will happen)."""
    challenge = container.ports.store.get(challenge_id)
    assert challenge is not None
    return challenge.delivery.status.value == "sent" or challenge.status.value == "failed"


def wait_until_settled(container: Container, challenge_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(challenge_ids)
    while pending:
        pending = [cid for cid in pending if not is_settled(container, cid)]
        if not pending:
            return
        if time.monotonic() > deadline:
            states = [container.ports.store.get(cid) for cid in pending[:5]]
            raise AssertionError(f"{len(pending)} challenges never settled, e.g. {states}")
        time.sleep(0.1)


def sms_per_number(fake: FakeTwilio) -> Counter[str]:
    return Counter(message["To"] for message in fake.messages)


def assert_each_got_one_sms_or_failed(
    container: Container, challenges: dict[str, str], users: dict[str, str], fake: FakeTwilio
) -> Counter[str]:
    """Every challenge ({challenge: user}): one SMS and `sent`, or `failed` and at most one SMS.

    Returns how many ended each way ("sent", "failed").
    """
    per_number = sms_per_number(fake)
    outcomes: Counter[str] = Counter()
    for challenge_id, user_id in challenges.items():
        challenge = container.ports.store.get(challenge_id)
        assert challenge is not None
        received = per_number[users[user_id]]
        assert received <= 1, f"{challenge_id}: {received} SMS"
        if challenge.status.value == "failed":
            outcomes["failed"] += 1
        else:
            assert challenge.delivery.status.value == "sent", challenge
            assert received == 1, f"{challenge_id} is sent but no SMS arrived"
            outcomes["sent"] += 1
    return outcomes
