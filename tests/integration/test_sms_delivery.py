"""SMS delivery is idempotent: a task run twice, or after a crash, never sends one code twice."""

from __future__ import annotations

import base64
import json
import threading
from typing import TYPE_CHECKING, Any

from celery.contrib.testing.worker import start_worker
from celery.worker import state as worker_state

from mfa_pipeline.domain.challenges import RequestContext, RequestedFactor
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.domain.events import SmsDeliveryRequested
from mfa_pipeline.services.delivery import DeliveryOutcome
from tests.fixtures.pipeline import new_user_id, wait_until

if TYPE_CHECKING:
    import pytest
    from celery import Celery

    from mfa_pipeline.bootstrap import Container
    from tests.fakes.fake_twilio import FakeTwilio


def active_sms_user(container: Container, fake: FakeTwilio) -> str:
    """A user whose SMS factor is confirmed, going through the real enrollment path."""
    user_id = new_user_id()
    container.services.enrollment.put_user(user_id=user_id, firm_id="firm-test")
    enrollment = container.services.enrollment.enroll_sms(
        user_id=user_id, phone="+12015550123", region=None
    )
    assert (
        container.services.sms_delivery.deliver(challenge_id=enrollment.challenge_id, seq=0)
        is DeliveryOutcome.SENT
    )
    code = fake.messages[-1]["Body"].split("code is ")[1][:6]
    container.services.enrollment.activate(
        user_id=user_id, factor_id=enrollment.factor.factor_id, code=code
    )
    return user_id


def sms_challenge(container: Container, user_id: str) -> str:
    view = container.services.challenges.issue(
        user_id=user_id, factor=RequestedFactor.SMS, context=RequestContext(ip="203.0.113.9")
    )
    return view.challenge.challenge_id


def test_a_second_run_of_a_delivered_task_sends_nothing(
    container: Container, fake_twilio: FakeTwilio
) -> None:
    user_id = active_sms_user(container, fake_twilio)
    challenge_id = sms_challenge(container, user_id)
    assert (
        container.services.sms_delivery.deliver(challenge_id=challenge_id, seq=0)
        is DeliveryOutcome.SENT
    )
    assert (
        container.services.sms_delivery.deliver(challenge_id=challenge_id, seq=0)
        is DeliveryOutcome.DUPLICATE
    )
    assert len(fake_twilio.messages) == 2  # enrollment + this login


def test_a_run_after_a_worker_died_mid_send_marks_the_challenge_failed_instead_of_resending(
    container: Container, fake_twilio: FakeTwilio
) -> None:
    user_id = active_sms_user(container, fake_twilio)
    challenge_id = sms_challenge(container, user_id)
    # The first worker claimed the send a minute ago and died before recording the answer.
    container.ports.store.claim_delivery(
        challenge_id, 0, "0" * 64, now=container.ports.clock.now() - 60, ttl_seconds=600
    )
    assert (
        container.services.sms_delivery.deliver(challenge_id=challenge_id, seq=0)
        is DeliveryOutcome.FAILED
    )
    view = container.services.challenges.get(challenge_id)
    assert view.status.value == "failed"
    assert view.challenge.delivery.error_code == "interrupted"
    assert len(fake_twilio.messages) == 1


def test_a_copy_of_a_task_whose_send_began_moments_ago_looks_again_later_and_sends_nothing(
    container: Container, fake_twilio: FakeTwilio
) -> None:
    user_id = active_sms_user(container, fake_twilio)
    challenge_id = sms_challenge(container, user_id)
    # Another run claimed the send just now and is waiting for the provider (a redelivered
    # copy of the task, or one published again by the recovery sweep, runs beside it).
    container.ports.store.claim_delivery(
        challenge_id, 0, "0" * 64, now=container.ports.clock.now(), ttl_seconds=600
    )
    assert (
        container.services.sms_delivery.deliver(challenge_id=challenge_id, seq=0)
        is DeliveryOutcome.RETRY
    )
    view = container.services.challenges.get(challenge_id)
    assert view.status.value == "pending"
    assert view.challenge.delivery.status.value == "sending"
    assert len(fake_twilio.messages) == 1  # the enrollment's only
    # Its last attempt does not wait any longer: never a second code, so the challenge fails.
    outcome = container.services.sms_delivery.deliver(
        challenge_id=challenge_id, seq=0, final_attempt=True
    )
    assert outcome is DeliveryOutcome.FAILED
    assert len(fake_twilio.messages) == 1


def test_concurrent_runs_of_one_delivery_send_one_sms(
    container: Container, fake_twilio: FakeTwilio
) -> None:
    user_id = active_sms_user(container, fake_twilio)
    challenge_id = sms_challenge(container, user_id)
    outcomes: list[DeliveryOutcome] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        outcomes.append(container.services.sms_delivery.deliver(challenge_id=challenge_id, seq=0))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(DeliveryOutcome.SENT) == 1
    assert len(fake_twilio.messages) == 2


def test_a_transient_error_on_the_last_allowed_attempt_fails_the_challenge(
    container: Container, fake_twilio: FakeTwilio
) -> None:
    user_id = active_sms_user(container, fake_twilio)
    challenge_id = sms_challenge(container, user_id)
    fake_twilio.fail_next(1, status=503)
    outcome = container.services.sms_delivery.deliver(
        challenge_id=challenge_id, seq=0, final_attempt=True
    )
    assert outcome is DeliveryOutcome.FAILED
    assert container.services.challenges.get(challenge_id).status.value == "failed"


def test_a_duplicated_task_message_through_a_real_worker_sends_one_sms(
    container: Container, fake_twilio: FakeTwilio, celery_app: Celery
) -> None:
    user_id = active_sms_user(container, fake_twilio)
    challenge_id = sms_challenge(container, user_id)  # the API published one delivery task
    # The broker hands the same delivery out twice more (as after a lost acknowledgement).
    container.ports.publisher.publish(SmsDeliveryRequested(challenge_id, user_id, seq=0))
    container.ports.publisher.publish(SmsDeliveryRequested(challenge_id, user_id, seq=0))
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=["sms"]):
        wait_until(
            lambda: (
                container.redis.llen("sms") == 0
                and not worker_state.active_requests
                and not worker_state.reserved_requests
            )
        )
    assert len(fake_twilio.messages) == 2  # enrollment + one login code
    assert container.services.challenges.get(challenge_id).challenge.delivery.status.value == "sent"


def test_the_task_payload_holds_ids_only(container: Container, fake_twilio: FakeTwilio) -> None:
    user_id = active_sms_user(container, fake_twilio)
    container.redis.delete("sms")
    challenge_id = sms_challenge(container, user_id)
    (raw,) = container.redis.lrange("sms", 0, -1)
    envelope = json.loads(raw)
    args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
    assert args == [challenge_id, 0]
    assert kwargs == {}
    assert "2015550123" not in raw


def test_a_delivery_that_finds_the_stores_down_is_retried_not_dropped(
    container: Container,
    fake_twilio: FakeTwilio,
    celery_app: Celery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_id = active_sms_user(container, fake_twilio)
    deliver = container.services.sms_delivery.deliver
    challenge_id = sms_challenge(container, user_id)
    attempts: list[str] = []

    def blinking(**kwargs: Any) -> DeliveryOutcome:
        if kwargs["challenge_id"] == challenge_id:
            attempts.append(challenge_id)
            if len(attempts) == 1:
                raise UnavailableError("The challenge store is unavailable; try again.")
        return deliver(**kwargs)

    monkeypatch.setattr(container.services.sms_delivery, "deliver", blinking)
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=["sms"]):
        wait_until(
            lambda: (
                container.services.challenges.get(challenge_id).challenge.delivery.status.value
                == "sent"
            )
        )
    assert len(attempts) == 2
    assert [m["To"] for m in fake_twilio.messages] == ["+12015550123"] * 2  # enrollment, login
