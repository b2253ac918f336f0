"""SmsDeliveryService on in-memory twins: outcomes of one send sequence, and what it sends."""

from __future__ import annotations

import re

import pytest

from mfa_pipeline.domain.challenges import (
    Challenge,
    ChallengeStatus,
    DeliveryStatus,
    FactorType,
    RequestContext,
    RequestedFactor,
)
from mfa_pipeline.domain.errors import WrongCodeError
from mfa_pipeline.domain.events import ChallengeFinished
from mfa_pipeline.ports import SmsPermanentError, SmsTransientError
from mfa_pipeline.services.delivery import DeliveryOutcome
from tests.unit.service_kit import PHONE, ServiceKit, make_kit


@pytest.fixture
def kit() -> ServiceKit:
    return make_kit()


def sms_challenge(kit: ServiceKit) -> str:
    """A login challenge on an active SMS factor, queued for its first send (sequence 0)."""
    user_id = kit.add_user()
    kit.add_sms(user_id)
    view = kit.challenges.issue(
        user_id=user_id,
        factor=RequestedFactor.SMS,
        context=RequestContext(ip="203.0.113.9", application="grow"),
    )
    return view.challenge.challenge_id


def deliver(kit: ServiceKit, challenge_id: str, seq: int = 0, **kwargs: bool) -> DeliveryOutcome:
    return kit.delivery.deliver(challenge_id=challenge_id, seq=seq, **kwargs)


def stored(kit: ServiceKit, challenge_id: str) -> Challenge:
    challenge = kit.store.get(challenge_id)
    assert challenge is not None
    return challenge


def transient() -> SmsTransientError:
    return SmsTransientError("provider answered 503", code="503")


# --- outcomes --------------------------------------------------------------------------------


def test_a_sent_code_records_the_providers_message_id(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)

    assert deliver(kit, challenge_id) is DeliveryOutcome.SENT

    delivery = stored(kit, challenge_id).delivery
    assert (delivery.status, delivery.provider_id) == (DeliveryStatus.SENT, kit.sms.provider_ids[0])
    assert [m.to for m in kit.sms.sent] == [PHONE]


def test_a_second_run_of_a_sent_sequence_is_a_duplicate_and_sends_nothing(
    kit: ServiceKit,
) -> None:
    challenge_id = sms_challenge(kit)
    deliver(kit, challenge_id)

    assert deliver(kit, challenge_id) is DeliveryOutcome.DUPLICATE
    assert len(kit.sms.attempts) == 1


def test_a_transient_error_asks_for_a_retry_and_leaves_the_challenge_pending(
    kit: ServiceKit,
) -> None:
    challenge_id = sms_challenge(kit)
    kit.sms.fail_next(transient())

    assert deliver(kit, challenge_id) is DeliveryOutcome.RETRY

    challenge = stored(kit, challenge_id)
    assert (challenge.status, challenge.delivery.status) == (
        ChallengeStatus.PENDING,
        DeliveryStatus.RETRYING,
    )


def test_the_code_of_a_send_that_failed_transiently_does_not_verify(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)
    kit.sms.fail_next(transient())
    deliver(kit, challenge_id)
    # The double saw the message it refused; nothing reached the phone.
    assert kit.sms.sent == []
    unsent_code = kit.sms.attempts[0].code

    with pytest.raises(WrongCodeError):
        kit.challenges.verify(challenge_id=challenge_id, code=unsent_code)


def test_a_retry_after_a_transient_error_sends_a_code_that_verifies(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)
    kit.sms.fail_next(transient())
    deliver(kit, challenge_id)

    assert deliver(kit, challenge_id) is DeliveryOutcome.SENT

    view = kit.challenges.verify(challenge_id=challenge_id, code=kit.sms.last.code)
    assert view.status is ChallengeStatus.VERIFIED


def test_a_transient_error_on_the_final_attempt_fails_the_challenge(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)
    kit.sms.fail_next(transient())

    assert deliver(kit, challenge_id, final_attempt=True) is DeliveryOutcome.FAILED

    assert stored(kit, challenge_id).status is ChallengeStatus.FAILED
    assert kit.events(ChallengeFinished) == [
        ChallengeFinished(
            challenge_id,
            stored(kit, challenge_id).user_id,
            factor=FactorType.SMS,
            status=ChallengeStatus.FAILED,
            application="grow",
        )
    ]


def test_a_permanent_error_fails_the_challenge_with_the_providers_error_code(
    kit: ServiceKit,
) -> None:
    challenge_id = sms_challenge(kit)
    kit.sms.fail_next(SmsPermanentError("not a mobile number", code="21614"))

    assert deliver(kit, challenge_id) is DeliveryOutcome.FAILED

    challenge = stored(kit, challenge_id)
    assert (challenge.status, challenge.delivery.status, challenge.delivery.error_code) == (
        ChallengeStatus.FAILED,
        DeliveryStatus.FAILED,
        "21614",
    )


def test_a_factor_removed_before_delivery_fails_the_challenge_without_sending(
    kit: ServiceKit,
) -> None:
    challenge_id = sms_challenge(kit)
    challenge = stored(kit, challenge_id)
    kit.enrollment.delete_factor(user_id=challenge.user_id, factor_id=challenge.factor_id or "")

    assert deliver(kit, challenge_id) is DeliveryOutcome.FAILED

    failed = stored(kit, challenge_id)
    assert (failed.status, failed.delivery.error_code) == (
        ChallengeStatus.FAILED,
        "factor_removed",
    )
    assert kit.sms.attempts == []


def test_a_sequence_superseded_by_a_resend_is_skipped_without_sending(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)
    kit.clock.advance(kit.rules.resend_interval_seconds)
    kit.challenges.resend(challenge_id=challenge_id)

    assert deliver(kit, challenge_id, seq=0) is DeliveryOutcome.SKIPPED
    assert kit.sms.attempts == []


def test_an_expired_challenge_is_skipped_without_sending(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)
    kit.clock.advance(kit.rules.lifetimes.sms)

    assert deliver(kit, challenge_id) is DeliveryOutcome.SKIPPED
    assert kit.sms.attempts == []


# --- the message -----------------------------------------------------------------------------


def test_the_six_digits_in_the_sms_are_the_code_that_verifies(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)
    deliver(kit, challenge_id)

    (code,) = re.findall(r"\d{6,}", kit.sms.last.body)

    view = kit.challenges.verify(challenge_id=challenge_id, code=code)
    assert view.status is ChallengeStatus.VERIFIED


def test_the_sms_says_the_code_lasts_10_minutes_and_holds_no_other_digits(
    kit: ServiceKit,
) -> None:
    deliver(kit, sms_challenge(kit))
    body = kit.sms.last.body

    assert "10 minutes" in body
    assert re.findall(r"\d+", body) == [kit.sms.last.code, "10"]
