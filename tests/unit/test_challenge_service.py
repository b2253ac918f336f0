"""ChallengeService on in-memory twins: choosing a factor, verifying, limits and resends."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.domain.challenges import (
    ChallengeStatus,
    FactorType,
    RequestContext,
    RequestedFactor,
)
from mfa_pipeline.domain.errors import (
    ChallengeExpiredError,
    FactorNotEnrolledError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    TooManyAttemptsError,
    TooManyResendsError,
    WrongCodeError,
)
from mfa_pipeline.domain.events import ChallengeFinished, ChallengeIssued, SmsDeliveryRequested
from mfa_pipeline.domain.limits import RateLimit
from mfa_pipeline.domain.rules import ChallengeRules
from mfa_pipeline.services.delivery import DeliveryOutcome
from tests.unit.service_kit import ServiceKit, TotpFactor, make_kit

if TYPE_CHECKING:
    from mfa_pipeline.services.challenges import ChallengeView

IP = "203.0.113.9"
CONTEXT = RequestContext(ip=IP, user_agent="pytest", application="manage")


@pytest.fixture
def kit() -> ServiceKit:
    return make_kit()


def issue(
    kit: ServiceKit,
    user_id: str,
    factor: RequestedFactor = RequestedFactor.AUTO,
    *,
    context: RequestContext = CONTEXT,
    **kwargs: str,
) -> ChallengeView:
    return kit.challenges.issue(user_id=user_id, factor=factor, context=context, **kwargs)


def totp_user(kit: ServiceKit) -> tuple[str, TotpFactor]:
    user_id = kit.add_user()
    return user_id, kit.add_totp(user_id)


def totp_challenge(kit: ServiceKit) -> tuple[str, TotpFactor]:
    """A pending TOTP challenge (no code sent along) and the factor that answers it."""
    user_id, totp = totp_user(kit)
    return issue(kit, user_id, RequestedFactor.TOTP).challenge.challenge_id, totp


def sms_challenge(kit: ServiceKit) -> str:
    user_id = kit.add_user()
    kit.add_sms(user_id)
    return issue(kit, user_id, RequestedFactor.SMS).challenge.challenge_id


def delivered_sms_challenge(kit: ServiceKit) -> tuple[str, str]:
    """An SMS challenge whose first code was sent; returns its id and that code."""
    challenge_id = sms_challenge(kit)
    assert kit.delivery.deliver(challenge_id=challenge_id, seq=0) is DeliveryOutcome.SENT
    return challenge_id, kit.sms.last.code


def miss(kit: ServiceKit, challenge_id: str, totp: TotpFactor) -> Exception:
    with pytest.raises((WrongCodeError, TooManyAttemptsError)) as caught:
        kit.challenges.verify(challenge_id=challenge_id, code=totp.wrong_code(at=kit.clock.now()))
    return caught.value


# --- choosing the factor ---------------------------------------------------------------------


def test_auto_picks_totp_over_sms_when_both_are_active(kit: ServiceKit) -> None:
    user_id = kit.add_user()
    kit.add_sms(user_id)
    totp = kit.add_totp(user_id)

    view = issue(kit, user_id)

    assert (view.challenge.factor, view.challenge.factor_id) == (FactorType.TOTP, totp.factor_id)


def test_auto_picks_sms_when_it_is_the_only_active_factor(kit: ServiceKit) -> None:
    user_id = kit.add_user()
    sms = kit.add_sms(user_id)

    view = issue(kit, user_id)

    assert (view.challenge.factor, view.challenge.factor_id) == (FactorType.SMS, sms.factor_id)


def test_auto_passes_over_a_pending_totp_factor(kit: ServiceKit) -> None:
    user_id = kit.add_user()
    kit.add_totp(user_id, active=False)
    sms = kit.add_sms(user_id)

    assert issue(kit, user_id).challenge.factor_id == sms.factor_id


def test_a_user_whose_only_factor_is_pending_has_nothing_to_be_challenged_with(
    kit: ServiceKit,
) -> None:
    user_id = kit.add_user()
    kit.add_totp(user_id, active=False)

    with pytest.raises(FactorNotEnrolledError):
        issue(kit, user_id)


def test_an_explicit_factor_id_picks_that_factor_over_the_preferred_one(kit: ServiceKit) -> None:
    user_id = kit.add_user()
    kit.add_totp(user_id)
    sms = kit.add_sms(user_id)

    assert issue(kit, user_id, factor_id=sms.factor_id).challenge.factor_id == sms.factor_id


def test_an_explicit_factor_id_of_another_user_is_refused(kit: ServiceKit) -> None:
    user_id, _ = totp_user(kit)
    _, someone_elses = totp_user(kit)

    with pytest.raises(FactorNotEnrolledError):
        issue(kit, user_id, factor_id=someone_elses.factor_id)


def test_an_explicit_factor_id_of_a_pending_factor_is_refused(kit: ServiceKit) -> None:
    user_id = kit.add_user()
    kit.add_sms(user_id)
    pending = kit.add_totp(user_id, active=False)

    with pytest.raises(FactorNotEnrolledError):
        issue(kit, user_id, factor_id=pending.factor_id)


def test_an_unknown_user_is_not_found(kit: ServiceKit) -> None:
    with pytest.raises(NotFoundError):
        issue(kit, "nobody")


# --- issuing ---------------------------------------------------------------------------------


def test_an_sms_challenge_is_announced_and_its_first_send_requested_as_sequence_zero(
    kit: ServiceKit,
) -> None:
    user_id = kit.add_user()
    kit.add_sms(user_id)

    challenge_id = issue(kit, user_id).challenge.challenge_id

    assert kit.publisher.events == [
        ChallengeIssued(challenge_id, user_id, FactorType.SMS),
        SmsDeliveryRequested(challenge_id, user_id, seq=0),
    ]


def test_a_totp_code_sent_with_the_challenge_verifies_it_in_one_call(kit: ServiceKit) -> None:
    user_id, totp = totp_user(kit)

    view = issue(kit, user_id, RequestedFactor.TOTP, code=totp.code(at=kit.clock.now()))

    challenge_id = view.challenge.challenge_id
    assert view.status is ChallengeStatus.VERIFIED
    assert kit.events(ChallengeFinished) == [
        ChallengeFinished(
            challenge_id,
            user_id,
            factor=FactorType.TOTP,
            status=ChallengeStatus.VERIFIED,
            application="manage",
        )
    ]
    stored = kit.store.get(challenge_id)
    assert stored is not None
    assert stored.status is ChallengeStatus.VERIFIED


def test_a_wrong_totp_code_sent_with_the_challenge_leaves_it_pending_with_four_attempts_left(
    kit: ServiceKit,
) -> None:
    user_id, totp = totp_user(kit)

    with pytest.raises(WrongCodeError) as caught:
        issue(kit, user_id, RequestedFactor.TOTP, code=totp.wrong_code(at=kit.clock.now()))

    assert caught.value.attempts_remaining == 4
    stored = kit.store.get(caught.value.details["challenge_id"])
    assert stored is not None
    assert (stored.status, stored.attempts_remaining) == (ChallengeStatus.PENDING, 4)


def test_when_one_attempt_is_allowed_a_wrong_code_sent_with_the_challenge_locks_it() -> None:
    kit = make_kit(rules=ChallengeRules(max_attempts=1))
    user_id, totp = totp_user(kit)

    with pytest.raises(TooManyAttemptsError) as caught:
        issue(kit, user_id, RequestedFactor.TOTP, code=totp.wrong_code(at=kit.clock.now()))

    challenge_id = caught.value.details["challenge_id"]
    assert kit.challenges.get(challenge_id).status is ChallengeStatus.LOCKED
    with pytest.raises(TooManyAttemptsError):
        kit.challenges.verify(challenge_id=challenge_id, code=totp.code(at=kit.clock.now()))


def test_a_code_sent_with_a_challenge_of_another_factor_than_totp_is_an_invalid_request(
    kit: ServiceKit,
) -> None:
    user_id = kit.add_user()
    kit.add_sms(user_id)

    with pytest.raises(InvalidRequestError):
        issue(kit, user_id, code="123456")


# --- verifying -------------------------------------------------------------------------------


def test_the_current_totp_code_verifies_a_pending_challenge(kit: ServiceKit) -> None:
    challenge_id, totp = totp_challenge(kit)

    view = kit.challenges.verify(challenge_id=challenge_id, code=totp.code(at=kit.clock.now()))

    assert view.status is ChallengeStatus.VERIFIED


def test_a_code_after_the_lifetime_is_refused_as_expired_without_waiting_for_a_sweep(
    kit: ServiceKit,
) -> None:
    challenge_id, totp = totp_challenge(kit)
    kit.clock.advance(kit.rules.lifetimes.other)

    with pytest.raises(ChallengeExpiredError):
        kit.challenges.verify(challenge_id=challenge_id, code=totp.code(at=kit.clock.now()))


def test_a_totp_code_accepted_on_one_challenge_is_refused_as_replayed_on_the_next(
    kit: ServiceKit,
) -> None:
    first, totp = totp_challenge(kit)
    code = totp.code(at=kit.clock.now())
    kit.challenges.verify(challenge_id=first, code=code)
    second = issue(kit, totp.factor.user_id).challenge.challenge_id

    with pytest.raises(WrongCodeError) as caught:
        kit.challenges.verify(challenge_id=second, code=code)

    assert caught.value.details["reason"] == "replayed"


def test_a_replayed_one_shot_code_counts_as_a_failure_and_does_not_reset_the_count(
    kit: ServiceKit,
) -> None:
    """The step is claimed as the verified challenge is stored; the count is reset only after."""
    user_id, totp = totp_user(kit)
    code = totp.code(at=kit.clock.now())
    assert issue(kit, user_id, RequestedFactor.TOTP, code=code).status is ChallengeStatus.VERIFIED
    for _ in range(3):
        with pytest.raises(WrongCodeError):
            issue(kit, user_id, RequestedFactor.TOTP, code=totp.wrong_code(at=kit.clock.now()))
    assert kit.ports.failures.state(user_id).failures == 3

    with pytest.raises(WrongCodeError) as caught:
        issue(kit, user_id, RequestedFactor.TOTP, code=code)

    assert caught.value.details["reason"] == "replayed"
    assert kit.ports.failures.state(user_id).failures == 4
    kept = kit.store.get(caught.value.details["challenge_id"])
    assert kept is not None
    assert (kept.status, kept.attempts) == (ChallengeStatus.PENDING, 1)
    verified = [e for e in kit.events(ChallengeFinished) if e.status is ChallengeStatus.VERIFIED]
    assert len(verified) == 1


def test_a_code_five_steps_old_is_refused_as_clock_skew(kit: ServiceKit) -> None:
    challenge_id, totp = totp_challenge(kit)

    with pytest.raises(WrongCodeError) as caught:
        kit.challenges.verify(
            challenge_id=challenge_id, code=totp.code(at=kit.clock.now(), steps=-5)
        )

    assert caught.value.details["reason"] == "clock_skew"


def test_a_code_refused_as_clock_skew_uses_an_attempt(kit: ServiceKit) -> None:
    challenge_id, totp = totp_challenge(kit)

    with pytest.raises(WrongCodeError) as caught:
        kit.challenges.verify(
            challenge_id=challenge_id, code=totp.code(at=kit.clock.now(), steps=-5)
        )

    assert caught.value.attempts_remaining == 4
    assert kit.challenges.get(challenge_id).attempts_remaining == 4


def test_the_fifth_wrong_code_locks_the_challenge(kit: ServiceKit) -> None:
    challenge_id, totp = totp_challenge(kit)
    misses = [miss(kit, challenge_id, totp) for _ in range(5)]

    assert [type(m) for m in misses] == [WrongCodeError] * 4 + [TooManyAttemptsError]
    assert kit.challenges.get(challenge_id).status is ChallengeStatus.LOCKED


def test_locking_a_challenge_publishes_that_it_finished_locked(kit: ServiceKit) -> None:
    challenge_id, totp = totp_challenge(kit)
    for _ in range(5):
        miss(kit, challenge_id, totp)

    assert kit.events(ChallengeFinished) == [
        ChallengeFinished(
            challenge_id,
            totp.factor.user_id,
            factor=FactorType.TOTP,
            status=ChallengeStatus.LOCKED,
            application="manage",
        )
    ]


# --- rate limits -----------------------------------------------------------------------------


def test_the_eleventh_challenge_of_a_user_within_the_window_is_rate_limited(
    kit: ServiceKit,
) -> None:
    user_id, _ = totp_user(kit)
    for _ in range(10):
        issue(kit, user_id)

    with pytest.raises(RateLimitedError) as caught:
        issue(kit, user_id)

    assert caught.value.retry_after > 0


def test_a_rate_limited_user_can_start_challenges_again_once_the_window_has_passed(
    kit: ServiceKit,
) -> None:
    user_id, _ = totp_user(kit)
    for _ in range(10):
        issue(kit, user_id)
    with pytest.raises(RateLimitedError):
        issue(kit, user_id)

    kit.clock.advance(kit.rules.challenges_per_user.window_seconds)

    assert issue(kit, user_id).status is ChallengeStatus.PENDING


def test_code_attempts_from_one_ip_are_limited_across_users() -> None:
    kit = make_kit(rules=ChallengeRules(verifications_per_ip=RateLimit(3, 600)))
    challenges = [totp_challenge(kit) for _ in range(4)]
    for challenge_id, totp in challenges[:3]:
        miss(kit, challenge_id, totp)
    fourth, totp = challenges[3]

    with pytest.raises(RateLimitedError):
        kit.challenges.verify(challenge_id=fourth, code=totp.code(at=kit.clock.now()))


def test_the_ip_limit_on_code_attempts_does_not_touch_another_ip() -> None:
    kit = make_kit(rules=ChallengeRules(verifications_per_ip=RateLimit(3, 600)))
    for challenge_id, totp in [totp_challenge(kit) for _ in range(3)]:
        miss(kit, challenge_id, totp)
    user_id, totp = totp_user(kit)
    elsewhere = issue(kit, user_id, context=RequestContext(ip="198.51.100.7"))

    view = kit.challenges.verify(
        challenge_id=elsewhere.challenge.challenge_id, code=totp.code(at=kit.clock.now())
    )

    assert view.status is ChallengeStatus.VERIFIED


# --- resending -------------------------------------------------------------------------------


def test_a_resend_sooner_than_30_seconds_is_rate_limited(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)
    kit.clock.advance(29)

    with pytest.raises(RateLimitedError) as caught:
        kit.challenges.resend(challenge_id=challenge_id)

    assert caught.value.retry_after > 0


def test_a_resend_after_30_seconds_requests_the_next_send_sequence(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)
    kit.clock.advance(30)

    kit.challenges.resend(challenge_id=challenge_id)

    assert [e.seq for e in kit.events(SmsDeliveryRequested)] == [0, 1]


def test_the_code_of_an_earlier_send_is_refused_after_a_resend(kit: ServiceKit) -> None:
    challenge_id, old_code = delivered_sms_challenge(kit)
    kit.clock.advance(30)
    kit.challenges.resend(challenge_id=challenge_id)
    assert kit.delivery.deliver(challenge_id=challenge_id, seq=1) is DeliveryOutcome.SENT

    with pytest.raises(WrongCodeError):
        kit.challenges.verify(challenge_id=challenge_id, code=old_code)


def test_the_code_of_a_resend_verifies(kit: ServiceKit) -> None:
    challenge_id, _ = delivered_sms_challenge(kit)
    kit.clock.advance(30)
    kit.challenges.resend(challenge_id=challenge_id)
    kit.delivery.deliver(challenge_id=challenge_id, seq=1)

    view = kit.challenges.verify(challenge_id=challenge_id, code=kit.sms.last.code)

    assert view.status is ChallengeStatus.VERIFIED


def test_a_fourth_resend_is_refused(kit: ServiceKit) -> None:
    challenge_id = sms_challenge(kit)
    for _ in range(3):
        kit.clock.advance(30)
        kit.challenges.resend(challenge_id=challenge_id)
    kit.clock.advance(30)

    with pytest.raises(TooManyResendsError):
        kit.challenges.resend(challenge_id=challenge_id)


def test_a_totp_challenge_cannot_be_resent(kit: ServiceKit) -> None:
    challenge_id, _ = totp_challenge(kit)
    kit.clock.advance(30)

    with pytest.raises(InvalidRequestError):
        kit.challenges.resend(challenge_id=challenge_id)
