"""Conformance of the push answer script and the push fatigue guard: Redis and in-memory twins.

The answer runs against `answer_push.lua` and `InMemoryChallengeStore.answer_push` (the
`backend` fixture of the store conformance suite); the guard against `push_admit.lua` and
`InMemoryPushGuard`. Racing answers to one push are tried on the real Redis.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.adapters.push_guard import RedisPushGuard
from mfa_pipeline.domain.challenges import ChallengeStatus, FactorType
from mfa_pipeline.domain.push import MAX_PENDING_PER_USER, MAX_PER_HOUR
from mfa_pipeline.ports import Transition
from tests.doubles.push_guard import InMemoryPushGuard
from tests.integration.test_challenge_store import (
    T0,
    Backend,
    backend,  # noqa: F401 - the fixture, shared with the store conformance suite
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis

    from mfa_pipeline.domain.challenges import Challenge
    from mfa_pipeline.ports import PushGuard

PUSH_LIFE = 120


def push(b: Backend, **overrides: object) -> Challenge:
    return b.issued(factor=FactorType.PUSH, number_match="42", lifetime=PUSH_LIFE, **overrides)


def test_the_right_number_approves(backend: Backend) -> None:  # noqa: F811
    c = push(backend)
    result = backend.store.answer_push(
        c.challenge_id, approve=True, number="42", fraud=False, now=T0 + 5
    )
    assert (result.transition, result.status) == (Transition.DONE, ChallengeStatus.APPROVED)
    assert backend.status(c.challenge_id) is ChallengeStatus.APPROVED


@pytest.mark.parametrize(("approve", "number"), [(True, "41"), (True, None), (False, "42")])
def test_a_wrong_number_or_a_deny_denies(
    backend: Backend,  # noqa: F811
    approve: bool,
    number: str | None,
) -> None:
    c = push(backend)
    result = backend.store.answer_push(
        c.challenge_id, approve=approve, number=number, fraud=False, now=T0 + 5
    )
    assert result.status is ChallengeStatus.DENIED
    stored = backend.store.get(c.challenge_id)
    assert stored is not None
    assert not stored.fraud_reported


def test_not_me_marks_the_challenge(backend: Backend) -> None:  # noqa: F811
    c = push(backend)
    backend.store.answer_push(c.challenge_id, approve=False, number=None, fraud=True, now=T0 + 5)
    stored = backend.store.get(c.challenge_id)
    assert stored is not None
    assert stored.fraud_reported
    assert stored.status is ChallengeStatus.DENIED


def test_a_second_answer_changes_nothing(backend: Backend) -> None:  # noqa: F811
    c = push(backend)
    backend.store.answer_push(c.challenge_id, approve=False, number=None, fraud=False, now=T0 + 1)
    again = backend.store.answer_push(
        c.challenge_id, approve=True, number="42", fraud=False, now=T0 + 2
    )
    assert again.transition is Transition.COMPLETED
    assert backend.status(c.challenge_id) is ChallengeStatus.DENIED


def test_an_answer_after_expiry_changes_nothing(backend: Backend) -> None:  # noqa: F811
    c = push(backend)
    late = backend.store.answer_push(
        c.challenge_id, approve=True, number="42", fraud=False, now=T0 + PUSH_LIFE
    )
    assert late.transition is Transition.EXPIRED
    stored = backend.store.get(c.challenge_id)
    assert stored is not None
    assert stored.status is ChallengeStatus.PENDING  # the sweep, not the answer, expires it


def test_an_sms_challenge_cannot_be_answered_as_a_push(backend: Backend) -> None:  # noqa: F811
    c = backend.issued(number_match="42")
    refused = backend.store.answer_push(
        c.challenge_id, approve=True, number="42", fraud=False, now=T0 + 1
    )
    assert refused.transition is Transition.MISMATCH
    assert backend.status(c.challenge_id) is ChallengeStatus.PENDING


def test_racing_answers_to_one_push_settle_it_once(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    from tests.integration.test_challenge_store import redis_backend  # noqa: PLC0415

    b = redis_backend(redis_client, key_prefix)
    c = push(b)
    results = []
    barrier = threading.Barrier(8)

    def answer(n: int) -> None:
        barrier.wait()
        results.append(
            b.store.answer_push(
                c.challenge_id, approve=n % 2 == 0, number="42", fraud=False, now=T0 + 1
            )
        )

    threads = [threading.Thread(target=answer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    done = [r for r in results if r.transition is Transition.DONE]
    assert len(done) == 1
    assert b.status(c.challenge_id) is done[0].status


# --- the fatigue guard -----------------------------------------------------------------------


@pytest.fixture(params=["redis", "memory"])
def guard(request: pytest.FixtureRequest) -> Iterator[PushGuard]:
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        yield RedisPushGuard(client, prefix=request.getfixturevalue("key_prefix"))
    else:
        yield InMemoryPushGuard()


def test_at_most_three_pushes_are_pending_at_once(guard: PushGuard) -> None:
    for n in range(MAX_PENDING_PER_USER):
        assert guard.admit("alice", f"c{n}", now=T0, expires_at=T0 + PUSH_LIFE) == 0
    wait = guard.admit("alice", "c9", now=T0 + 10, expires_at=T0 + 10 + PUSH_LIFE)
    assert wait == pytest.approx(PUSH_LIFE - 10)
    assert guard.admit("bob", "b1", now=T0, expires_at=T0 + PUSH_LIFE) == 0
    guard.release("alice", "c0")  # answered: no longer pending
    assert guard.admit("alice", "c10", now=T0 + 11, expires_at=T0 + 11 + PUSH_LIFE) == 0


def test_an_expired_push_no_longer_counts_as_pending(guard: PushGuard) -> None:
    for n in range(MAX_PENDING_PER_USER):
        guard.admit("alice", f"c{n}", now=T0, expires_at=T0 + PUSH_LIFE)
    assert guard.admit("alice", "late", now=T0 + PUSH_LIFE, expires_at=T0 + 2 * PUSH_LIFE) == 0


def test_at_most_ten_pushes_an_hour(guard: PushGuard) -> None:
    for n in range(MAX_PER_HOUR):
        assert guard.admit("alice", f"c{n}", now=T0 + n, expires_at=T0 + n + 1) == 0
        guard.release("alice", f"c{n}")
    wait = guard.admit("alice", "c11", now=T0 + 100, expires_at=T0 + 220)
    assert wait == pytest.approx(3600 - 100)
    assert guard.admit("alice", "c12", now=T0 + 3600, expires_at=T0 + 3720) == 0


def test_not_me_blocks_new_pushes_for_a_while(guard: PushGuard) -> None:
    guard.block("alice", seconds=900, now=T0)
    wait = guard.admit("alice", "c1", now=T0, expires_at=T0 + PUSH_LIFE)
    assert 890 < wait <= 900
    assert guard.admit("bob", "b1", now=T0, expires_at=T0 + PUSH_LIFE) == 0
