"""SweepService on in-memory twins: one `expired` event per due challenge, and only once."""

from __future__ import annotations

import pytest

from mfa_pipeline.domain.challenges import (
    ChallengeStatus,
    FactorType,
    RequestContext,
    RequestedFactor,
)
from mfa_pipeline.domain.events import ChallengeFinished
from tests.unit.service_kit import ServiceKit, TotpFactor, make_kit


@pytest.fixture
def kit() -> ServiceKit:
    return make_kit()


def totp_user(kit: ServiceKit) -> TotpFactor:
    return kit.add_totp(kit.add_user())


def totp_challenge(kit: ServiceKit, *, application: str = "manage") -> ChallengeFinished:
    """A pending TOTP challenge, returned as the event its expiry should publish."""
    totp = totp_user(kit)
    view = kit.challenges.issue(
        user_id=totp.factor.user_id,
        factor=RequestedFactor.TOTP,
        context=RequestContext(application=application),
    )
    return ChallengeFinished(
        view.challenge.challenge_id,
        totp.factor.user_id,
        factor=FactorType.TOTP,
        status=ChallengeStatus.EXPIRED,
        application=application,
    )


def swept_events(kit: ServiceKit) -> list[ChallengeFinished]:
    """The `ChallengeFinished` events published by one sweep now."""
    before = len(kit.publisher.events)
    kit.sweeps.sweep()
    finished = kit.publisher.events[before:]
    assert all(isinstance(e, ChallengeFinished) for e in finished)
    return [e for e in finished if isinstance(e, ChallengeFinished)]


def test_a_sweep_publishes_one_expired_event_per_due_challenge_with_its_application(
    kit: ServiceKit,
) -> None:
    expected = [totp_challenge(kit, application=app) for app in ("manage", "grow", "manage")]
    kit.clock.advance(kit.rules.lifetimes.other)

    published = swept_events(kit)

    assert sorted(published, key=lambda e: e.challenge_id) == sorted(
        expected, key=lambda e: e.challenge_id
    )


def test_a_sweep_returns_how_many_challenges_expired(kit: ServiceKit) -> None:
    for _ in range(2):
        totp_challenge(kit)
    kit.clock.advance(kit.rules.lifetimes.other)

    assert kit.sweeps.sweep() == 2


def test_a_sweep_publishes_nothing_for_a_challenge_not_yet_expired(kit: ServiceKit) -> None:
    totp_challenge(kit)
    kit.clock.advance(kit.rules.lifetimes.other - 1)

    assert swept_events(kit) == []


def test_a_sweep_publishes_nothing_for_finished_challenges(kit: ServiceKit) -> None:
    verified_at_once = totp_user(kit)
    kit.challenges.issue(
        user_id=verified_at_once.factor.user_id,
        factor=RequestedFactor.TOTP,
        code=verified_at_once.code(at=kit.clock.now()),
    )
    verified_later = totp_user(kit)
    pending = kit.challenges.issue(
        user_id=verified_later.factor.user_id, factor=RequestedFactor.TOTP
    )
    kit.challenges.verify(
        challenge_id=pending.challenge.challenge_id,
        code=verified_later.code(at=kit.clock.now()),
    )
    kit.clock.advance(kit.rules.lifetimes.other)

    assert swept_events(kit) == []


def test_sweeping_again_publishes_nothing(kit: ServiceKit) -> None:
    totp_challenge(kit)
    kit.clock.advance(kit.rules.lifetimes.other)
    kit.sweeps.sweep()

    assert swept_events(kit) == []
