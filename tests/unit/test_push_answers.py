"""A push approval restores the failure budget, and lifts the code factors' lock when one holds.

The user row comes with the answering device in one read, so an approval for a user without a
lock writes nothing to that row (no conditional UPDATE per login), and one with a lock lifts it,
audited, as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from mfa_pipeline.cli.device import SimulatedDevice
from mfa_pipeline.domain.challenges import ChallengeStatus, RequestedFactor
from mfa_pipeline.services.push import answer_from_wire
from tests.unit.service_kit import ServiceKit, make_kit


@pytest.fixture
def kit() -> ServiceKit:
    return make_kit()


def with_phone(kit: ServiceKit) -> tuple[str, SimulatedDevice]:
    user_id, device = kit.add_user(), SimulatedDevice.generate()
    registration = kit.services.push_devices.register(user_id=user_id, **device.registration())
    device.device_id, device.user_id = registration.factor.factor_id, user_id
    return user_id, device


def approve(kit: ServiceKit, user_id: str, device: SimulatedDevice) -> ChallengeStatus:
    view = kit.challenges.issue(user_id=user_id, factor=RequestedFactor.PUSH)
    cid = view.challenge.challenge_id
    body: dict[str, Any] = device.answer(
        cid, "approve", number=view.challenge.number_match, timestamp=int(kit.clock.now())
    )
    return kit.services.push_answers.answer(answer_from_wire(**body))


def test_an_approval_without_a_lock_in_force_writes_nothing_to_the_user_row(
    kit: ServiceKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, device = with_phone(kit)
    unlocks: list[str] = []
    monkeypatch.setattr(kit.factors, "unlock_code_factors", lambda u, **_: unlocks.append(u))

    assert approve(kit, user_id, device) is ChallengeStatus.APPROVED

    assert unlocks == []


def test_an_approval_lifts_a_lock_in_force_and_the_audit_says_so(kit: ServiceKit) -> None:
    user_id, device = with_phone(kit)
    now = kit.clock.now()
    kit.factors.lock_code_factors(user_id, now=now, until=now + 3600)

    assert approve(kit, user_id, device) is ChallengeStatus.APPROVED

    user = kit.factors.get_user(user_id)
    assert user is not None
    assert user.locked_until is None
    (unlocked,) = [e for e in kit.audit.for_user(user_id) if e.event == "factors_unlocked"]
    assert unlocked.outcome == "strong_login"


def test_a_lapsed_lock_is_left_to_lapse(kit: ServiceKit, monkeypatch: pytest.MonkeyPatch) -> None:
    user_id, device = with_phone(kit)
    now = kit.clock.now()
    kit.factors.lock_code_factors(user_id, now=now - 7200, until=now - 3600)
    unlocks: list[str] = []
    monkeypatch.setattr(kit.factors, "unlock_code_factors", lambda u, **_: unlocks.append(u))

    assert approve(kit, user_id, device) is ChallengeStatus.APPROVED

    assert unlocks == []
