"""Conformance of `record_provider_status`: a provider's delivery reports, late and out of order.

Runs against the real Redis script and the in-memory twin (the backends of the store
conformance suite), so the twin cannot drift from `record_provider_status.lua`.
"""

from __future__ import annotations

import pytest

from mfa_pipeline.domain.challenges import ChallengeStatus, DeliveryStatus
from mfa_pipeline.ports import StoreResult, Transition
from tests.integration.test_challenge_store import (
    MALFORMED_IDS,
    RIGHT,
    T0,
    TTL,
    Backend,
    digest,
    make_challenge,
    memory_backend,
    redis_backend,
)

SID = "SM1"  # the provider id `Backend.sent` records


@pytest.fixture(params=["redis", "memory"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The store conformance suite's two backends."""
    if request.param == "redis":
        return redis_backend(
            request.getfixturevalue("redis_client"), request.getfixturevalue("key_prefix")
        )
    return memory_backend()


def delivery_of(b: Backend, challenge_id: str) -> tuple[DeliveryStatus, str | None, str | None]:
    challenge = b.store.get(challenge_id)
    assert challenge is not None
    d = challenge.delivery
    return d.status, d.provider_id, d.error_code


def report(
    b: Backend,
    challenge_id: str,
    status: str,
    *,
    seq: int = 0,
    sid: str = SID,
    error_code: str | None = None,
    now: float = T0 + 1,
) -> StoreResult:
    return b.store.record_provider_status(
        challenge_id, seq, provider_id=sid, status=status, now=now, error_code=error_code
    )


def test_a_delivered_report_moves_a_sent_delivery_to_delivered(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    assert report(backend, cid, "delivered") == StoreResult(
        Transition.DONE, ChallengeStatus.PENDING
    )
    assert delivery_of(backend, cid) == (DeliveryStatus.DELIVERED, SID, None)


def test_an_undelivered_report_keeps_the_providers_error_code(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    report(backend, cid, "undelivered", error_code="30003")
    assert delivery_of(backend, cid) == (DeliveryStatus.UNDELIVERED, SID, "30003")


def test_an_undelivered_report_leaves_the_challenge_pending_and_its_code_valid(
    backend: Backend,
) -> None:
    cid = backend.sent().challenge_id
    report(backend, cid, "undelivered", error_code="30005")
    assert backend.status(cid) is ChallengeStatus.PENDING
    assert backend.verify(cid, now=T0 + 2).status is ChallengeStatus.VERIFIED


def test_a_sent_report_arriving_after_delivered_does_not_regress_it(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    report(backend, cid, "delivered", now=T0 + 2)
    assert report(backend, cid, "sent", now=T0 + 3).transition is Transition.DUPLICATE
    assert delivery_of(backend, cid)[0] is DeliveryStatus.DELIVERED


def test_a_repeated_report_is_a_duplicate(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    report(backend, cid, "delivered")
    assert report(backend, cid, "delivered").transition is Transition.DUPLICATE


def test_a_second_final_report_does_not_replace_the_first(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    report(backend, cid, "delivered")
    assert report(backend, cid, "failed", error_code="30008").transition is Transition.DUPLICATE
    assert delivery_of(backend, cid) == (DeliveryStatus.DELIVERED, SID, None)


def test_a_report_on_another_message_is_stale(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    assert report(backend, cid, "delivered", sid="SM-other").transition is Transition.STALE
    assert delivery_of(backend, cid)[0] is DeliveryStatus.SENT


def test_a_report_on_the_previous_send_after_a_resend_leaves_the_new_send_alone(
    backend: Backend,
) -> None:
    cid = backend.sent().challenge_id
    assert backend.store.request_resend(
        cid, now=T0 + 40, max_resends=3, min_interval=30
    ).transition is (Transition.DONE)
    backend.store.claim_delivery(cid, 1, digest(cid, RIGHT, 1), now=T0 + 41, ttl_seconds=TTL)
    backend.store.record_delivery(cid, 1, status="sent", now=T0 + 41, provider_id="SM2")
    assert report(backend, cid, "undelivered", seq=0, error_code="30003").transition is (
        Transition.STALE
    )
    assert delivery_of(backend, cid) == (DeliveryStatus.SENT, "SM2", None)
    assert report(backend, cid, "delivered", seq=1, sid="SM2").transition is Transition.DONE


def test_a_report_that_overtakes_the_workers_record_is_adopted_and_kept(
    backend: Backend,
) -> None:
    challenge = backend.issued()
    cid = challenge.challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=TTL)
    assert report(backend, cid, "delivered", sid="SM9").transition is Transition.DONE
    # The worker's own record of the same message arrives afterwards: `delivered` stays.
    backend.store.record_delivery(cid, 0, status="sent", now=T0 + 2, provider_id="SM9")
    challenge_now = backend.store.get(cid)
    assert challenge_now is not None
    assert challenge_now.delivery.status is DeliveryStatus.DELIVERED
    assert challenge_now.delivery.provider_id == "SM9"
    assert challenge_now.delivery.sent_at == T0 + 2


def test_a_report_before_any_send_began_is_stale(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    assert report(backend, cid, "delivered").transition is Transition.STALE
    assert delivery_of(backend, cid)[0] is DeliveryStatus.QUEUED


def test_a_report_after_a_retry_was_scheduled_is_stale(backend: Backend) -> None:
    """The timed-out attempt's message may exist, but its code is dead: not this send's news."""
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=TTL)
    backend.store.record_delivery(cid, 0, status="retrying", now=T0 + 1, error_code="timeout")
    assert report(backend, cid, "delivered", sid="SM-lost").transition is Transition.STALE


def test_a_report_after_verification_updates_the_delivery_only(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.verify(cid, now=T0 + 1)
    assert report(backend, cid, "delivered", now=T0 + 2) == StoreResult(
        Transition.DONE, ChallengeStatus.VERIFIED
    )
    assert backend.status(cid) is ChallengeStatus.VERIFIED
    assert delivery_of(backend, cid)[0] is DeliveryStatus.DELIVERED


def test_a_report_for_an_unknown_challenge_is_not_found(backend: Backend) -> None:
    unknown = make_challenge().challenge_id
    assert report(backend, unknown, "delivered").transition is Transition.NOT_FOUND


@pytest.mark.parametrize("challenge_id", MALFORMED_IDS)
def test_a_report_for_a_malformed_id_is_not_found(backend: Backend, challenge_id: str) -> None:
    assert report(backend, challenge_id, "delivered").transition is Transition.NOT_FOUND
