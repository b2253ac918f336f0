"""The broker cannot take a task: what a login sees, and what the user receives (nothing twice).

Creation answers `UnavailableError` (503) only after failing the challenge it stored, so no
late copy of the send goes out and the login page's retry gets the one and only code. A final
status whose webhook cannot be queued keeps its answer: the webhook is the extra, not the login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.domain.challenges import (
    ChallengeStatus,
    DeliveryStatus,
    FactorType,
    RequestContext,
    RequestedFactor,
)
from mfa_pipeline.domain.errors import RateLimitedError, UnavailableError
from mfa_pipeline.domain.events import (
    ChallengeFinished,
    ChallengeIssued,
    PushDeliveryRequested,
    SmsDeliveryRequested,
)
from mfa_pipeline.services.challenges import QUEUE_UNAVAILABLE
from mfa_pipeline.services.delivery import DeliveryOutcome
from tests.unit.service_kit import ServiceKit, make_kit

if TYPE_CHECKING:
    from mfa_pipeline.domain.events import Event

CONTEXT = RequestContext(ip="203.0.113.9", user_agent="pytest", application="manage")


class Broker:
    """Stands between the services and the recording publisher; `down` refuses some events."""

    def __init__(self, kit: ServiceKit, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down: tuple[type[Event], ...] = ()
        record = kit.publisher.publish

        def publish(event: Event) -> None:
            if isinstance(event, self.down):
                raise UnavailableError("The task queue is unavailable; try again.")
            record(event)

        monkeypatch.setattr(kit.publisher, "publish", publish)


@pytest.fixture
def kit() -> ServiceKit:
    return make_kit()


@pytest.fixture
def broker(kit: ServiceKit, monkeypatch: pytest.MonkeyPatch) -> Broker:
    return Broker(kit, monkeypatch)


def issued_ids(kit: ServiceKit) -> list[str]:
    return [e.challenge_id for e in kit.events(ChallengeIssued)]


def test_an_sms_whose_send_cannot_be_queued_fails_its_challenge_and_is_never_sent(
    kit: ServiceKit, broker: Broker
) -> None:
    user_id = kit.add_user()
    kit.add_sms(user_id)
    broker.down = (SmsDeliveryRequested,)

    with pytest.raises(UnavailableError):
        kit.challenges.issue(user_id=user_id, factor=RequestedFactor.SMS, context=CONTEXT)

    (stranded,) = issued_ids(kit)
    stored = kit.store.get(stranded)
    assert stored is not None
    assert stored.status is ChallengeStatus.FAILED
    assert stored.delivery.status is DeliveryStatus.FAILED
    assert stored.delivery.error_code == QUEUE_UNAVAILABLE
    # A copy of the task that reached the broker after all finds nothing to send.
    assert kit.delivery.deliver(challenge_id=stranded, seq=0) is DeliveryOutcome.SKIPPED
    assert kit.sms.attempts == []

    broker.down = ()  # the login page asks again once the broker is back: one code
    retry = kit.challenges.issue(user_id=user_id, factor=RequestedFactor.SMS, context=CONTEXT)
    assert kit.delivery.deliver(challenge_id=retry.challenge.challenge_id, seq=0) is (
        DeliveryOutcome.SENT
    )
    assert len(kit.sms.sent) == 1


def test_pushes_that_never_left_do_not_hold_the_users_pending_push_places(
    kit: ServiceKit, broker: Broker
) -> None:
    challenges = kit.challenges
    user_id = kit.add_user()
    kit.factors.add_factor(kit._new_factor(user_id, FactorType.PUSH, active=True))
    broker.down = (PushDeliveryRequested,)

    for _ in range(4):  # one more than the 3 pending pushes a user may have
        with pytest.raises(UnavailableError):
            challenges.issue(user_id=user_id, factor=RequestedFactor.PUSH, context=CONTEXT)
    refused = issued_ids(kit)
    assert len(refused) == 4
    for challenge_id in refused:
        stored = kit.store.get(challenge_id)
        assert stored is not None
        assert stored.status is ChallengeStatus.FAILED

    broker.down = ()
    for _ in range(3):
        view = challenges.issue(user_id=user_id, factor=RequestedFactor.PUSH, context=CONTEXT)
        assert view.status is ChallengeStatus.PENDING
    with pytest.raises(RateLimitedError):  # the limit itself still holds
        challenges.issue(user_id=user_id, factor=RequestedFactor.PUSH, context=CONTEXT)


def test_a_verified_login_stays_verified_when_its_webhook_cannot_be_queued(
    kit: ServiceKit, broker: Broker
) -> None:
    user_id = kit.add_user()
    totp = kit.add_totp(user_id)
    view = kit.challenges.issue(user_id=user_id, factor=RequestedFactor.TOTP, context=CONTEXT)
    broker.down = (ChallengeFinished,)

    verified = kit.challenges.verify(
        challenge_id=view.challenge.challenge_id, code=totp.code(at=kit.clock.now())
    )

    assert verified.status is ChallengeStatus.VERIFIED
    stored = kit.store.get(view.challenge.challenge_id)
    assert stored is not None
    assert stored.status is ChallengeStatus.VERIFIED
    assert kit.events(ChallengeFinished) == []  # refused, logged, and the login still answered
