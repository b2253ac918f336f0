"""A store blink after a send was claimed: the send is handed back, or kept, never lost.

Once a task has claimed send `seq`, a rerun that finds it still `sending` must assume it may
have left and fail it (never a second code). So the service itself must say `retrying` when
it failed before sending (the SQL read of the number or devices), and must not raise when only
the `sent` mark failed after the provider took the message.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.domain.challenges import (
    ChallengeStatus,
    DeliveryStatus,
    FactorType,
    RequestContext,
    RequestedFactor,
)
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.services.delivery import DeliveryOutcome
from mfa_pipeline.services.push import PushOutcome, push_token_context
from tests.unit.service_kit import ServiceKit, make_kit

if TYPE_CHECKING:
    from collections.abc import Callable

CONTEXT = RequestContext(ip="203.0.113.9", user_agent="pytest", application="manage")


def fail_once(
    monkeypatch: pytest.MonkeyPatch, target: object, name: str, when: Callable[..., bool]
) -> None:
    """`target.name` raises UnavailableError on its first call that `when` accepts."""
    real = getattr(target, name)
    failed: list[bool] = []

    def blinking(*args: object, **kwargs: object) -> object:
        if not failed and when(*args, **kwargs):
            failed.append(True)
            raise UnavailableError("The store is unavailable; try again.")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, blinking)


@pytest.fixture
def kit() -> ServiceKit:
    return make_kit()


def sms_challenge(kit: ServiceKit) -> str:
    user_id = kit.add_user()
    kit.add_sms(user_id)
    view = kit.challenges.issue(user_id=user_id, factor=RequestedFactor.SMS, context=CONTEXT)
    return view.challenge.challenge_id


def test_an_sms_whose_number_could_not_be_read_is_retried_and_then_sent_once(
    kit: ServiceKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    challenge_id = sms_challenge(kit)
    fail_once(monkeypatch, kit.factors, "get_factor", lambda *_a, **_k: True)

    assert kit.delivery.deliver(challenge_id=challenge_id, seq=0) is DeliveryOutcome.RETRY
    stored = kit.store.get(challenge_id)
    assert stored is not None
    assert stored.delivery.status is DeliveryStatus.RETRYING
    assert kit.sms.attempts == []

    assert kit.delivery.deliver(challenge_id=challenge_id, seq=0) is DeliveryOutcome.SENT
    assert len(kit.sms.sent) == 1
    verified = kit.challenges.verify(challenge_id=challenge_id, code=kit.sms.last.code)
    assert verified.status is ChallengeStatus.VERIFIED


def test_an_sms_sent_whose_sent_mark_failed_still_counts_as_sent_and_its_code_verifies(
    kit: ServiceKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    challenge_id = sms_challenge(kit)
    fail_once(
        monkeypatch,
        kit.store,
        "record_delivery",
        lambda *_a, **k: k.get("status") == DeliveryStatus.SENT.value,
    )

    # SENT, not an exception: the task is acknowledged, never rerun into `interrupted`.
    assert kit.delivery.deliver(challenge_id=challenge_id, seq=0) is DeliveryOutcome.SENT
    assert len(kit.sms.attempts) == 1
    verified = kit.challenges.verify(challenge_id=challenge_id, code=kit.sms.last.code)
    assert verified.status is ChallengeStatus.VERIFIED


def push_setup(kit: ServiceKit) -> str:
    """A user with one phone and a pending push challenge; its id."""
    user_id = kit.add_user()
    device = kit._new_factor(user_id, FactorType.PUSH, active=True)
    token = "fcm-token-" + device.factor_id
    device = replace(
        device,
        push_token_ciphertext=kit.secrets.encrypt(token, context=push_token_context(device)),
    )
    kit.factors.add_factor(device)
    view = kit.challenges.issue(user_id=user_id, factor=RequestedFactor.PUSH, context=CONTEXT)
    return view.challenge.challenge_id


def test_a_push_whose_devices_could_not_be_read_is_retried_and_then_sent(
    kit: ServiceKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, challenge_id = kit.services.push_delivery, push_setup(kit)
    fail_once(monkeypatch, kit.factors, "list_factors", lambda *_a, **_k: True)

    assert service.deliver(challenge_id=challenge_id) is PushOutcome.RETRY
    stored = kit.store.get(challenge_id)
    assert stored is not None
    assert stored.delivery.status is DeliveryStatus.RETRYING
    assert kit.push.sent == []

    assert service.deliver(challenge_id=challenge_id) is PushOutcome.SENT
    assert len(kit.push.sent) == 1


def test_a_push_sent_whose_sent_mark_failed_still_counts_as_sent(
    kit: ServiceKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, challenge_id = kit.services.push_delivery, push_setup(kit)
    fail_once(
        monkeypatch,
        kit.store,
        "record_delivery",
        lambda *_a, **k: k.get("status") == DeliveryStatus.SENT.value,
    )

    assert service.deliver(challenge_id=challenge_id) is PushOutcome.SENT
    assert len(kit.push.sent) == 1
    stored = kit.store.get(challenge_id)
    assert stored is not None
    assert stored.status is ChallengeStatus.PENDING  # still answerable on the phone
