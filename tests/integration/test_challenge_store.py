"""One conformance suite for every `ChallengeStore` and `RateLimiter`: Redis and in-memory.

Each test runs against the real Redis (its own key prefix) and the in-memory twin, so the
twin used by unit tests cannot drift from the Lua scripts. Time is explicit `now` values;
the only sleep is the one wait the Redis rate limiter itself asks for. Redis-only tests at
the end race real clients against one challenge and check the key layout.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pytest
import redis
from redis._parsers import _HiredisParser
from redis.connection import DefaultParser
from redis.crc import key_slot

from mfa_pipeline.adapters.redis_store import (
    MAX_BATCHES_PER_SHARD,
    RedisChallengeStore,
    RedisRateLimiter,
)
from mfa_pipeline.domain.challenges import (
    Challenge,
    ChallengePurpose,
    ChallengeStatus,
    Delivery,
    DeliveryStatus,
    FactorType,
    RequestContext,
    new_challenge_id,
    shard_of,
    shard_of_challenge,
)
from mfa_pipeline.domain.codes import code_digest
from mfa_pipeline.domain.limits import RateLimit
from mfa_pipeline.ports import ExpiredChallenge, StepClaim, StoreResult, Transition
from tests.doubles.memory_store import InMemoryChallengeStore, InMemoryRateLimiter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mfa_pipeline.ports import ChallengeStore, RateLimiter

SHARDS = 4
RETENTION = 3600
LIFETIME = 600
TTL = 600
MAX_ATTEMPTS = 5
T0 = 1_700_000_000.0
CODE_KEY = b"k" * 32
RIGHT = "123456"
WRONG = "654321"


# --- factories -------------------------------------------------------------------------------


def new_user_id() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def make_challenge(
    *,
    user_id: str | None = None,
    shards: int = SHARDS,
    created_at: float = T0,
    lifetime: float = LIFETIME,
    **overrides: Any,
) -> Challenge:
    """A pending SMS login challenge; any field can be overridden."""
    user_id = user_id or new_user_id()
    challenge = Challenge(
        challenge_id=new_challenge_id(shard_of(user_id, shards)),
        user_id=user_id,
        factor=FactorType.SMS,
        factor_id="factor-1",
        status=ChallengeStatus.PENDING,
        purpose=ChallengePurpose.LOGIN,
        created_at=created_at,
        expires_at=created_at + lifetime,
        attempts=0,
        max_attempts=MAX_ATTEMPTS,
        context=RequestContext(ip="203.0.113.9", user_agent="pytest", application="crm"),
        delivery=Delivery(DeliveryStatus.QUEUED),
    )
    return replace(challenge, **overrides)


def digest(challenge_id: str, code: str = RIGHT, seq: int = 0) -> str:
    return code_digest(CODE_KEY, challenge_id, seq, code)


# --- the stores under test -------------------------------------------------------------------


@dataclass
class Backend:
    """A store and limiter pair, with the few probes a conformance test needs."""

    kind: str
    store: ChallengeStore
    limiter: RateLimiter
    retention_left: Callable[[str], float]
    # The ids handed to each atomic expiry step of a sweep, batch by batch.
    sweep_batches: list[list[str]] = field(default_factory=list)

    def let_time_pass(self, now: float, seconds: float) -> float:
        """Return `now + seconds`; Redis keeps rate windows in its own clock, so it waits."""
        if self.kind == "redis":
            time.sleep(seconds)
        return now + seconds

    def issued(self, **overrides: Any) -> Challenge:
        challenge = make_challenge(**overrides)
        self.store.create(challenge)
        return challenge

    def sent(self, *, now: float = T0, **overrides: Any) -> Challenge:
        """A challenge whose first code (`RIGHT`) is claimed and sent at `now`."""
        challenge = self.issued(created_at=now, **overrides)
        cid = challenge.challenge_id
        assert self.store.claim_delivery(cid, 0, digest(cid), now=now, ttl_seconds=TTL) == (
            StoreResult(Transition.DONE, ChallengeStatus.PENDING)
        )
        self.store.record_delivery(cid, 0, status="sent", now=now, provider_id="SM1")
        return challenge

    def verify(
        self, challenge_id: str, code: str = RIGHT, *, now: float, seq: int = 0
    ) -> StoreResult:
        return self.store.verify_code(challenge_id, [digest(challenge_id, code, seq)], now=now)

    def status(self, challenge_id: str) -> ChallengeStatus:
        challenge = self.store.get(challenge_id)
        assert challenge is not None
        return challenge.status


def redis_backend(client: redis.Redis, prefix: str) -> Backend:
    store = RedisChallengeStore(client, prefix=prefix, shards=SHARDS, retention_seconds=RETENTION)
    backend = Backend(
        kind="redis",
        store=store,
        limiter=RedisRateLimiter(client, prefix=prefix),
        retention_left=lambda cid: client.pttl(store.keys.challenge(cid)) / 1000,
    )
    script = store._sweep

    def spy(*, keys: list[str], args: list[Any]) -> Any:
        backend.sweep_batches.append([str(i) for i in args[3:]])
        return script(keys=keys, args=args)

    store._sweep = spy
    return backend


def memory_backend() -> Backend:
    store = InMemoryChallengeStore(retention_seconds=RETENTION)
    backend = Backend(
        kind="memory",
        store=store,
        limiter=InMemoryRateLimiter(),
        retention_left=lambda cid: store._records[cid].purge_at - store._now,
    )
    expire = store._expire_batch

    def spy(shard: int, ids: list[str], now: float) -> list[ExpiredChallenge]:
        backend.sweep_batches.append(list(ids))
        return expire(shard, ids, now)

    store._expire_batch = spy
    return backend


@pytest.fixture(params=["redis", "redis-cluster", "memory"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "redis":
        return redis_backend(
            request.getfixturevalue("redis_client"), request.getfixturevalue("key_prefix")
        )
    if request.param == "redis-cluster":
        # Three masters: a script whose keys spanned slots would fail here with CROSSSLOT.
        return redis_backend(
            request.getfixturevalue("redis_cluster_client"), request.getfixturevalue("key_prefix")
        )
    return memory_backend()


MALFORMED_IDS = [
    "",
    "*",
    "abc",
    "{s0}",
    "000" + "A" * 27 + ":",
    "000" + "A" * 27 + "*",
    "000" + "A" * 27 + "\n",
    "../" + "A" * 28,
    "00G" + "A" * 28,
    "000" + "A" * 29,
]


# --- create and get --------------------------------------------------------------------------


def test_a_created_challenge_reads_back_with_every_field(backend: Backend) -> None:
    challenge = make_challenge(
        attempts=2,
        context=RequestContext(ip="198.51.100.7", user_agent="Mozilla/5.0", application="crm"),
        delivery=Delivery(
            status=DeliveryStatus.SENT,
            attempts=2,
            provider_id="SM123",
            error_code="30003",
            sent_at=T0 + 1.25,
            updated_at=T0 + 2.5,
        ),
        resends=1,
        send_seq=1,
        last_resend_at=T0 + 0.75,
        number_match="42",
        purpose=ChallengePurpose.ENROLLMENT,
    )
    backend.store.create(challenge)
    assert backend.store.get(challenge.challenge_id) == challenge


def step(factor_id: str, at: int) -> StepClaim:
    return StepClaim(factor_id, at, TTL)


def verified_challenge(user_id: str) -> Challenge:
    """A one-shot TOTP login, stored verified at once."""
    return make_challenge(
        user_id=user_id,
        factor=FactorType.TOTP,
        status=ChallengeStatus.VERIFIED,
        completed_at=T0,
        delivery=Delivery(DeliveryStatus.NOT_APPLICABLE),
    )


def test_a_totp_step_is_claimed_only_above_the_last_one(backend: Backend) -> None:
    store = backend.store
    assert store.claim_totp_step("alice", step("f_1", 100)) is True
    assert store.claim_totp_step("alice", step("f_1", 100)) is False  # the same code again
    assert store.claim_totp_step("alice", step("f_1", 99)) is False  # an older one after it
    assert store.claim_totp_step("alice", step("f_1", 101)) is True
    assert store.claim_totp_step("alice", step("f_1", 101)) is False
    # Another factor (another user, or the same user's second app) has steps of its own.
    assert store.claim_totp_step("alice", step("f_2", 100)) is True


def test_a_one_shot_login_claims_its_step_as_it_stores_the_challenge(backend: Backend) -> None:
    store = backend.store
    first = verified_challenge(user_id="alice")
    assert store.create(first, step_claim=step("f_1", 100)) is True
    assert store.get(first.challenge_id) == first
    # The same code on a new challenge: refused, and that challenge is not stored.
    again = verified_challenge(user_id="alice")
    assert store.create(again, step_claim=step("f_1", 100)) is False
    assert store.get(again.challenge_id) is None
    # Creation and the two-step path share one mark per factor.
    assert store.claim_totp_step("alice", step("f_1", 100)) is False
    assert store.claim_totp_step("alice", step("f_1", 101)) is True
    later = verified_challenge(user_id="alice")
    assert store.create(later, step_claim=step("f_1", 101)) is False
    assert store.create(later, step_claim=step("f_1", 102)) is True
    # Without a claim, creation is as before.
    assert store.create(verified_challenge(user_id="alice")) is True


def test_a_challenge_created_already_verified_reads_back_verified(backend: Backend) -> None:
    challenge = backend.issued(
        factor=FactorType.TOTP, status=ChallengeStatus.VERIFIED, completed_at=T0
    )
    assert backend.store.get(challenge.challenge_id) == challenge


def test_empty_optional_text_reads_back_as_absent(backend: Backend) -> None:
    challenge = backend.issued(
        factor_id="", context=RequestContext(ip="", user_agent="", application=""), number_match=""
    )
    stored = backend.store.get(challenge.challenge_id)
    assert stored is not None
    assert (stored.factor_id, stored.context, stored.number_match) == (None, RequestContext(), None)


def test_creating_an_existing_id_again_changes_nothing(backend: Backend) -> None:
    challenge = backend.issued()
    backend.store.create(replace(challenge, user_id="someone-else", attempts=3))
    assert backend.store.get(challenge.challenge_id) == challenge


def test_an_unknown_well_formed_id_is_not_found(backend: Backend) -> None:
    unknown = new_challenge_id(0)
    assert backend.store.get(unknown) is None
    assert backend.verify(unknown, now=T0) == StoreResult(Transition.NOT_FOUND)


@pytest.mark.parametrize("challenge_id", MALFORMED_IDS)
def test_a_malformed_id_is_not_found_by_any_operation(backend: Backend, challenge_id: str) -> None:
    store = backend.store
    assert store.get(challenge_id) is None
    not_found = StoreResult(Transition.NOT_FOUND)
    assert store.verify_code(challenge_id, ["x"], now=T0) == not_found
    assert store.record_miss(challenge_id, now=T0) == not_found
    assert store.complete(challenge_id, ChallengeStatus.APPROVED, now=T0) == not_found
    assert store.claim_delivery(challenge_id, 0, "x", now=T0, ttl_seconds=TTL) == not_found
    assert store.record_delivery(challenge_id, 0, status="sent", now=T0) == not_found
    assert store.request_resend(challenge_id, now=T0, max_resends=3, min_interval=0) == not_found


# --- verify_code -----------------------------------------------------------------------------


def test_the_right_code_verifies_a_pending_challenge(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    result = backend.verify(cid, now=T0 + 10)
    assert result == StoreResult(Transition.DONE, ChallengeStatus.VERIFIED, attempts_remaining=5)
    stored = backend.store.get(cid)
    assert stored is not None
    assert (stored.status, stored.completed_at) == (ChallengeStatus.VERIFIED, T0 + 10)


def test_a_second_right_code_on_a_verified_challenge_is_completed(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.verify(cid, now=T0 + 10)
    assert backend.verify(cid, now=T0 + 11) == StoreResult(
        Transition.COMPLETED, ChallengeStatus.VERIFIED
    )


def test_any_of_several_candidate_hashes_verifies(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    candidates = [code_digest(b"o" * 32, cid, 0, RIGHT), digest(cid)]
    assert backend.store.verify_code(cid, candidates, now=T0 + 1).transition is Transition.DONE


def test_a_wrong_code_uses_one_attempt(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    result = backend.verify(cid, WRONG, now=T0 + 1)
    assert result == StoreResult(Transition.MISMATCH, ChallengeStatus.PENDING, attempts_remaining=4)
    stored = backend.store.get(cid)
    assert stored is not None
    assert stored.attempts == 1


def test_the_fifth_wrong_code_locks_the_challenge(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    results = [backend.verify(cid, WRONG, now=T0 + 1) for _ in range(MAX_ATTEMPTS)]
    assert [r.attempts_remaining for r in results[:-1]] == [4, 3, 2, 1]
    assert results[-1] == StoreResult(Transition.LOCKED, ChallengeStatus.LOCKED)
    assert backend.status(cid) is ChallengeStatus.LOCKED


def test_a_locked_challenge_refuses_even_the_right_code(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    for _ in range(MAX_ATTEMPTS):
        backend.verify(cid, WRONG, now=T0 + 1)
    assert backend.verify(cid, now=T0 + 2) == StoreResult(Transition.LOCKED, ChallengeStatus.LOCKED)


def test_wrong_codes_after_the_lock_use_no_more_attempts(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    for _ in range(MAX_ATTEMPTS + 3):
        backend.verify(cid, WRONG, now=T0 + 1)
    stored = backend.store.get(cid)
    assert stored is not None
    assert stored.attempts == MAX_ATTEMPTS


def test_a_code_checked_before_any_send_counts_as_a_miss(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    assert backend.verify(cid, now=T0 + 1).transition is Transition.MISMATCH


def test_the_right_code_at_the_expiry_time_is_expired(backend: Backend) -> None:
    challenge = backend.sent()
    result = backend.verify(challenge.challenge_id, now=challenge.expires_at)
    assert result.transition is Transition.EXPIRED


def test_a_challenge_refused_as_expired_is_never_verified(backend: Backend) -> None:
    challenge = backend.sent()
    backend.verify(challenge.challenge_id, now=challenge.expires_at + 1)
    stored = backend.store.get(challenge.challenge_id)
    assert stored is not None
    assert stored.status_at(challenge.expires_at + 1) is ChallengeStatus.EXPIRED


def test_the_right_code_after_the_sweep_is_expired(backend: Backend) -> None:
    challenge = backend.sent()
    backend.store.sweep(now=challenge.expires_at, batch_size=10)
    assert backend.verify(challenge.challenge_id, now=challenge.expires_at + 1) == StoreResult(
        Transition.EXPIRED, ChallengeStatus.EXPIRED
    )


# --- record_miss -----------------------------------------------------------------------------


def test_record_miss_uses_one_attempt(backend: Backend) -> None:
    cid = backend.issued(factor=FactorType.TOTP).challenge_id
    assert backend.store.record_miss(cid, now=T0 + 1) == StoreResult(
        Transition.MISMATCH, ChallengeStatus.PENDING, attempts_remaining=4
    )


def test_record_miss_locks_at_the_limit(backend: Backend) -> None:
    cid = backend.issued(factor=FactorType.TOTP, attempts=MAX_ATTEMPTS - 1).challenge_id
    assert backend.store.record_miss(cid, now=T0 + 1) == StoreResult(
        Transition.LOCKED, ChallengeStatus.LOCKED
    )


def test_record_miss_ignores_a_stored_code(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    assert backend.store.record_miss(cid, now=T0 + 1).transition is Transition.MISMATCH


def test_record_miss_on_a_verified_challenge_is_completed(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.verify(cid, now=T0 + 1)
    assert backend.store.record_miss(cid, now=T0 + 2).transition is Transition.COMPLETED


# --- complete --------------------------------------------------------------------------------


def test_complete_moves_a_pending_challenge_to_the_given_status(backend: Backend) -> None:
    cid = backend.issued(factor=FactorType.PUSH, attempts=1).challenge_id
    result = backend.store.complete(cid, ChallengeStatus.APPROVED, now=T0 + 5)
    assert result == StoreResult(Transition.DONE, ChallengeStatus.APPROVED, attempts_remaining=4)
    stored = backend.store.get(cid)
    assert stored is not None
    assert (stored.status, stored.completed_at) == (ChallengeStatus.APPROVED, T0 + 5)


@pytest.mark.parametrize(
    ("status", "transition"),
    [
        (ChallengeStatus.VERIFIED, Transition.COMPLETED),
        (ChallengeStatus.APPROVED, Transition.COMPLETED),
        (ChallengeStatus.DENIED, Transition.COMPLETED),
        (ChallengeStatus.FAILED, Transition.COMPLETED),
        (ChallengeStatus.EXPIRED, Transition.EXPIRED),
        (ChallengeStatus.LOCKED, Transition.LOCKED),
    ],
)
def test_a_final_challenge_refuses_completion_saying_why(
    backend: Backend, status: ChallengeStatus, transition: Transition
) -> None:
    cid = backend.issued(status=status, completed_at=T0).challenge_id
    assert backend.store.complete(cid, ChallengeStatus.DENIED, now=T0 + 1) == StoreResult(
        transition, status
    )


def test_complete_after_the_expiry_is_expired(backend: Backend) -> None:
    challenge = backend.issued(factor=FactorType.PUSH)
    result = backend.store.complete(
        challenge.challenge_id, ChallengeStatus.APPROVED, now=challenge.expires_at
    )
    assert result.transition is Transition.EXPIRED


# --- claim_delivery --------------------------------------------------------------------------


def test_a_first_claim_starts_the_send(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    result = backend.store.claim_delivery(cid, 0, digest(cid), now=T0 + 3, ttl_seconds=TTL)
    assert result == StoreResult(Transition.DONE, ChallengeStatus.PENDING)
    stored = backend.store.get(cid)
    assert stored is not None
    assert stored.delivery == Delivery(DeliveryStatus.SENDING, attempts=1, updated_at=T0 + 3)


def test_a_claim_resets_the_expiry_to_now_plus_the_ttl(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0 + 100, ttl_seconds=TTL)
    stored = backend.store.get(cid)
    assert stored is not None
    assert stored.expires_at == T0 + 100 + TTL


def test_a_claimed_challenge_is_swept_at_its_new_expiry_only(backend: Backend) -> None:
    challenge = backend.issued()
    cid = challenge.challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0 + 100, ttl_seconds=TTL)
    assert backend.store.sweep(now=challenge.expires_at, batch_size=10) == []
    assert [e.challenge_id for e in backend.store.sweep(now=T0 + 100 + TTL, batch_size=10)] == [cid]


def test_claiming_the_same_seq_while_it_is_sending_is_interrupted(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=TTL)
    again = backend.store.claim_delivery(cid, 0, digest(cid, WRONG), now=T0 + 1, ttl_seconds=TTL)
    assert again == StoreResult(Transition.INTERRUPTED, ChallengeStatus.PENDING)


def test_claiming_a_sent_seq_again_is_a_duplicate(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    again = backend.store.claim_delivery(cid, 0, digest(cid, WRONG), now=T0 + 1, ttl_seconds=TTL)
    assert again == StoreResult(Transition.DUPLICATE, ChallengeStatus.PENDING)


def test_a_duplicate_claim_keeps_the_code_that_was_sent(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid, WRONG), now=T0 + 1, ttl_seconds=TTL)
    assert backend.verify(cid, RIGHT, now=T0 + 2).transition is Transition.DONE


def test_a_retrying_seq_may_be_claimed_again(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=TTL)
    backend.store.record_delivery(cid, 0, status="retrying", now=T0 + 1, error_code="20429")
    again = backend.store.claim_delivery(cid, 0, digest(cid, WRONG), now=T0 + 2, ttl_seconds=TTL)
    assert again == StoreResult(Transition.DONE, ChallengeStatus.PENDING)
    stored = backend.store.get(cid)
    assert stored is not None
    assert (stored.delivery.status, stored.delivery.attempts) == (DeliveryStatus.SENDING, 2)


def test_a_reclaimed_send_verifies_its_new_code_only(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid, RIGHT), now=T0, ttl_seconds=TTL)
    backend.store.record_delivery(cid, 0, status="retrying", now=T0 + 1)
    backend.store.claim_delivery(cid, 0, digest(cid, WRONG), now=T0 + 2, ttl_seconds=TTL)
    assert backend.verify(cid, RIGHT, now=T0 + 3).transition is Transition.MISMATCH
    assert backend.verify(cid, WRONG, now=T0 + 4).transition is Transition.DONE


def test_a_claim_moments_after_another_is_in_flight_and_later_interrupted(
    backend: Backend,
) -> None:
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=TTL)
    soon = backend.store.claim_delivery(
        cid, 0, digest(cid, WRONG), now=T0 + 3, ttl_seconds=TTL, in_flight_seconds=10
    )
    assert soon == StoreResult(Transition.IN_FLIGHT, ChallengeStatus.PENDING)
    late = backend.store.claim_delivery(
        cid, 0, digest(cid, WRONG), now=T0 + 11, ttl_seconds=TTL, in_flight_seconds=10
    )
    assert late == StoreResult(Transition.INTERRUPTED, ChallengeStatus.PENDING)
    assert backend.verify(cid, RIGHT, now=T0 + 12).transition is Transition.DONE  # first code


# --- stale deliveries (a dead worker's sends, published again) --------------------------------

STALE = 20.0


def stale_ids(backend: Backend, now: float, grace: float = 60.0) -> list[str]:
    found = backend.store.stale_deliveries(
        now=now, stale_seconds=STALE, retry_grace_seconds=grace, batch_size=100
    )
    return sorted(d.challenge_id for d in found)


def test_a_send_queued_and_never_claimed_is_stale_once_per_period(backend: Backend) -> None:
    challenge = backend.issued()
    assert stale_ids(backend, T0 + STALE - 1) == []
    found = backend.store.stale_deliveries(
        now=T0 + STALE, stale_seconds=STALE, retry_grace_seconds=60, batch_size=100
    )
    assert [(d.challenge_id, d.user_id, d.factor, d.seq) for d in found] == [
        (challenge.challenge_id, challenge.user_id, "sms", 0)
    ]
    assert stale_ids(backend, T0 + STALE + 5) == []  # published again: not at every pass
    assert stale_ids(backend, T0 + 2 * STALE) == [challenge.challenge_id]


def test_a_claimed_send_that_never_finished_is_stale_and_a_sent_one_never(
    backend: Backend,
) -> None:
    lost = backend.issued().challenge_id
    done = backend.issued().challenge_id
    for cid in (lost, done):
        backend.store.claim_delivery(cid, 0, digest(cid), now=T0 + 1, ttl_seconds=TTL)
    backend.store.record_delivery(done, 0, status="sent", now=T0 + 2, provider_id="SM1")
    assert stale_ids(backend, T0 + STALE) == []  # claimed at T0 + 1: not yet
    assert stale_ids(backend, T0 + 1 + STALE) == [lost]
    assert stale_ids(backend, T0 + 1 + 2 * STALE) == [lost]


def test_a_retrying_send_is_stale_only_after_its_retry_grace(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0 + 1, ttl_seconds=TTL)
    backend.store.record_delivery(cid, 0, status="retrying", now=T0 + 2, error_code="20429")
    assert stale_ids(backend, T0 + 2 + STALE, grace=60) == []
    assert stale_ids(backend, T0 + 2 + 60 + STALE, grace=60) == [cid]


def test_a_resent_challenge_is_stale_from_its_resend_with_its_new_seq(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.store.request_resend(cid, now=T0 + 30, max_resends=3, min_interval=30)
    assert stale_ids(backend, T0 + 30 + STALE - 1) == []
    found = backend.store.stale_deliveries(
        now=T0 + 30 + STALE, stale_seconds=STALE, retry_grace_seconds=60, batch_size=100
    )
    assert [(d.challenge_id, d.seq) for d in found] == [(cid, 1)]


def test_a_finished_or_expired_challenge_is_never_stale(backend: Backend) -> None:
    verified = backend.issued().challenge_id
    backend.store.complete(verified, ChallengeStatus.VERIFIED, now=T0 + 1)
    backend.issued(lifetime=STALE / 2)  # expired, unswept
    failed = backend.issued().challenge_id
    backend.store.record_delivery(
        failed, 0, status="failed", now=T0 + 1, error_code="21211", fail_challenge=True
    )
    assert stale_ids(backend, T0 + 5 * STALE) == []


def test_claiming_an_older_seq_after_a_resend_is_stale(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.store.request_resend(cid, now=T0 + 30, max_resends=3, min_interval=30)
    old = backend.store.claim_delivery(cid, 0, digest(cid), now=T0 + 31, ttl_seconds=TTL)
    assert old == StoreResult(Transition.STALE, ChallengeStatus.PENDING)


def test_claiming_the_new_seq_after_a_resend_is_done(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.store.request_resend(cid, now=T0 + 30, max_resends=3, min_interval=30)
    new = backend.store.claim_delivery(cid, 1, digest(cid, seq=1), now=T0 + 31, ttl_seconds=TTL)
    assert new.transition is Transition.DONE


def test_a_claim_on_a_verified_challenge_is_completed(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.verify(cid, now=T0 + 1)
    claim = backend.store.claim_delivery(cid, 1, digest(cid), now=T0 + 2, ttl_seconds=TTL)
    assert claim == StoreResult(Transition.COMPLETED, ChallengeStatus.VERIFIED)


def test_a_claim_after_the_expiry_is_expired(backend: Backend) -> None:
    challenge = backend.issued()
    cid = challenge.challenge_id
    claim = backend.store.claim_delivery(
        cid, 0, digest(cid), now=challenge.expires_at, ttl_seconds=TTL
    )
    assert claim.transition is Transition.EXPIRED


# --- record_delivery -------------------------------------------------------------------------


def test_a_sent_delivery_records_the_provider_id_and_time(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=TTL)
    result = backend.store.record_delivery(cid, 0, status="sent", now=T0 + 2, provider_id="SM9")
    assert result == StoreResult(Transition.DONE, ChallengeStatus.PENDING)
    stored = backend.store.get(cid)
    assert stored is not None
    assert stored.delivery == Delivery(
        DeliveryStatus.SENT, attempts=1, provider_id="SM9", sent_at=T0 + 2, updated_at=T0 + 2
    )


def test_a_failed_delivery_that_fails_the_challenge_marks_it_failed(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=TTL)
    result = backend.store.record_delivery(
        cid, 0, status="failed", now=T0 + 2, error_code="21211", fail_challenge=True
    )
    assert result == StoreResult(Transition.DONE, ChallengeStatus.FAILED)
    stored = backend.store.get(cid)
    assert stored is not None
    assert (stored.status, stored.completed_at, stored.delivery.error_code) == (
        ChallengeStatus.FAILED,
        T0 + 2,
        "21211",
    )


def test_a_failed_challenge_is_never_expired_by_a_sweep(backend: Backend) -> None:
    challenge = backend.issued()
    cid = challenge.challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=TTL)
    backend.store.record_delivery(cid, 0, status="failed", now=T0 + 1, fail_challenge=True)
    assert backend.store.sweep(now=challenge.expires_at + 1, batch_size=10) == []


def test_a_failure_found_before_any_claim_still_fails_the_challenge(backend: Backend) -> None:
    # The delivery service fails a challenge whose factor was removed before claiming a send.
    cid = backend.issued().challenge_id
    result = backend.store.record_delivery(
        cid, 0, status="failed", now=T0 + 1, error_code="factor_removed", fail_challenge=True
    )
    assert result == StoreResult(Transition.DONE, ChallengeStatus.FAILED)


def test_a_failed_delivery_kills_the_code(backend: Backend) -> None:
    cid = backend.issued().challenge_id
    backend.store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=TTL)
    backend.store.record_delivery(cid, 0, status="failed", now=T0 + 1)
    assert backend.verify(cid, now=T0 + 2).transition is Transition.MISMATCH


def test_an_outcome_of_an_older_seq_after_a_resend_is_stale(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.store.request_resend(cid, now=T0 + 30, max_resends=3, min_interval=30)
    late = backend.store.record_delivery(
        cid, 0, status="failed", now=T0 + 31, error_code="30003", fail_challenge=True
    )
    assert late == StoreResult(Transition.STALE, ChallengeStatus.PENDING)
    assert backend.status(cid) is ChallengeStatus.PENDING


def test_a_delivery_report_after_verification_keeps_the_challenge_verified(
    backend: Backend,
) -> None:
    cid = backend.sent().challenge_id
    backend.verify(cid, now=T0 + 1)
    report = backend.store.record_delivery(
        cid, 0, status="delivered", now=T0 + 2, fail_challenge=True
    )
    assert report == StoreResult(Transition.DONE, ChallengeStatus.VERIFIED)
    assert backend.status(cid) is ChallengeStatus.VERIFIED


def test_a_delivery_report_for_an_unknown_challenge_is_not_found(backend: Backend) -> None:
    result = backend.store.record_delivery(new_challenge_id(1), 0, status="sent", now=T0)
    assert result == StoreResult(Transition.NOT_FOUND)


# --- request_resend --------------------------------------------------------------------------


def test_a_resend_too_soon_says_how_long_to_wait(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    result = backend.store.request_resend(cid, now=T0 + 12.5, max_resends=3, min_interval=30)
    assert (result.transition, result.retry_after) == (Transition.TOO_SOON, pytest.approx(17.5))


def test_a_resend_after_the_interval_starts_the_next_seq(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    result = backend.store.request_resend(cid, now=T0 + 30, max_resends=3, min_interval=30)
    assert result == StoreResult(Transition.DONE, ChallengeStatus.PENDING, seq=1)
    stored = backend.store.get(cid)
    assert stored is not None
    assert (stored.send_seq, stored.resends, stored.last_resend_at, stored.delivery.status) == (
        1,
        1,
        T0 + 30,
        DeliveryStatus.QUEUED,
    )


def test_the_old_code_is_dead_right_after_a_resend(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.store.request_resend(cid, now=T0 + 30, max_resends=3, min_interval=30)
    assert backend.verify(cid, now=T0 + 31).transition is Transition.MISMATCH


def test_the_resend_interval_counts_from_the_last_resend(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    backend.store.request_resend(cid, now=T0 + 40, max_resends=3, min_interval=30)
    result = backend.store.request_resend(cid, now=T0 + 50, max_resends=3, min_interval=30)
    assert (result.transition, result.retry_after) == (Transition.TOO_SOON, pytest.approx(20))


def test_resends_are_exhausted_after_the_maximum(backend: Backend) -> None:
    cid = backend.sent().challenge_id
    results = [
        backend.store.request_resend(cid, now=T0 + 30 * n, max_resends=3, min_interval=30)
        for n in range(1, 5)
    ]
    assert [r.transition for r in results] == [Transition.DONE] * 3 + [Transition.EXHAUSTED]
    assert [r.seq for r in results[:3]] == [1, 2, 3]


def test_a_resend_after_the_expiry_is_expired(backend: Backend) -> None:
    challenge = backend.sent()
    result = backend.store.request_resend(
        challenge.challenge_id, now=challenge.expires_at, max_resends=3, min_interval=30
    )
    assert result.transition is Transition.EXPIRED


# --- sweep -----------------------------------------------------------------------------------


def test_a_sweep_expires_only_due_pending_challenges(backend: Backend) -> None:
    due = [backend.issued(lifetime=60) for _ in range(3)]
    later = backend.issued(lifetime=120)
    swept = backend.store.sweep(now=T0 + 60, batch_size=10)
    assert {e.challenge_id for e in swept} == {c.challenge_id for c in due}
    assert backend.status(later.challenge_id) is ChallengeStatus.PENDING


def test_a_sweep_reports_who_and_what_expired(backend: Backend) -> None:
    with_app = backend.issued(lifetime=60)
    without_app = backend.issued(lifetime=61, context=RequestContext())
    swept = backend.store.sweep(now=T0 + 61, batch_size=10)
    assert sorted(swept, key=lambda e: e.challenge_id) == sorted(
        [
            ExpiredChallenge(with_app.challenge_id, with_app.user_id, "sms", "crm"),
            ExpiredChallenge(without_app.challenge_id, without_app.user_id, "sms", None),
        ],
        key=lambda e: e.challenge_id,
    )


def test_a_second_sweep_reports_nothing_already_reported(backend: Backend) -> None:
    backend.issued(lifetime=60)
    backend.store.sweep(now=T0 + 60, batch_size=10)
    assert backend.store.sweep(now=T0 + 61, batch_size=10) == []


def test_a_verified_challenge_is_never_expired_by_a_sweep(backend: Backend) -> None:
    challenge = backend.sent()
    backend.verify(challenge.challenge_id, now=T0 + 1)
    assert backend.store.sweep(now=challenge.expires_at + 1, batch_size=10) == []
    assert backend.status(challenge.challenge_id) is ChallengeStatus.VERIFIED


def test_an_expired_challenge_reads_as_expired_after_the_sweep(backend: Backend) -> None:
    challenge = backend.issued(lifetime=60)
    backend.store.sweep(now=T0 + 75, batch_size=10)
    stored = backend.store.get(challenge.challenge_id)
    assert stored is not None
    assert (stored.status, stored.completed_at) == (ChallengeStatus.EXPIRED, T0 + 75)


def test_an_expired_challenge_is_kept_for_the_retention_period(backend: Backend) -> None:
    challenge = backend.issued(lifetime=60)
    backend.store.sweep(now=T0 + 60, batch_size=10)
    assert RETENTION - 5 < backend.retention_left(challenge.challenge_id) <= RETENTION


def test_a_pending_challenge_is_kept_for_its_lifetime_and_the_retention(
    backend: Backend,
) -> None:
    challenge = backend.issued(lifetime=LIFETIME)
    left = backend.retention_left(challenge.challenge_id)
    assert LIFETIME + RETENTION - 5 < left <= LIFETIME + RETENTION


def test_every_expiry_batch_holds_at_most_batch_size_ids(backend: Backend) -> None:
    user_id = new_user_id()
    for _ in range(7):
        backend.issued(user_id=user_id, lifetime=60)
    swept = backend.store.sweep(now=T0 + 60, batch_size=3)
    assert len(swept) == 7
    assert [len(batch) for batch in backend.sweep_batches] == [3, 3, 1]


def test_one_sweep_stops_after_its_batch_limit_and_the_next_takes_the_rest(
    backend: Backend,
) -> None:
    user_id = new_user_id()  # one user: every challenge in one shard
    for _ in range(MAX_BATCHES_PER_SHARD + 5):
        backend.issued(user_id=user_id, lifetime=60)
    first = backend.store.sweep(now=T0 + 60, batch_size=1)
    second = backend.store.sweep(now=T0 + 60, batch_size=1)
    assert (len(first), len(second)) == (MAX_BATCHES_PER_SHARD, 5)


def test_a_sweep_never_touches_challenges_that_are_not_due(backend: Backend) -> None:
    for _ in range(1000):
        backend.issued(lifetime=LIFETIME)
    due = {backend.issued(lifetime=60).challenge_id for _ in range(3)}
    backend.store.sweep(now=T0 + 60, batch_size=100)
    touched = [cid for batch in backend.sweep_batches for cid in batch]
    assert sorted(touched) == sorted(due)


def test_a_sweep_expires_in_order_of_expiry_within_a_shard(backend: Backend) -> None:
    user_id = new_user_id()
    lifetimes = [90, 30, 60]
    made = {life: backend.issued(user_id=user_id, lifetime=life) for life in lifetimes}
    swept = backend.store.sweep(now=T0 + 90, batch_size=10)
    assert [e.challenge_id for e in swept] == [
        made[life].challenge_id for life in sorted(lifetimes)
    ]


# --- rate limiter ----------------------------------------------------------------------------


def test_the_limiter_allows_the_limit_within_one_window(backend: Backend) -> None:
    limit = RateLimit(3, 600)
    assert [backend.limiter.hit("cu:alice", limit, now=T0 + n) for n in range(3)] == [0, 0, 0]


def test_the_limiter_refuses_over_the_limit_with_a_positive_wait(backend: Backend) -> None:
    limit = RateLimit(3, 600)
    for _ in range(3):
        backend.limiter.hit("cu:alice", limit, now=T0)
    wait = backend.limiter.hit("cu:alice", limit, now=T0)
    assert 0 < wait <= 600


def test_the_limiter_counts_each_key_on_its_own(backend: Backend) -> None:
    limit = RateLimit(1, 600)
    backend.limiter.hit("cu:alice", limit, now=T0)
    assert backend.limiter.hit("cu:bob", limit, now=T0) == 0


def test_the_limiter_allows_again_once_the_returned_wait_has_passed(backend: Backend) -> None:
    limit = RateLimit(2, 1)  # Redis times windows itself: this test waits out one second.
    for _ in range(2):
        backend.limiter.hit("vi:203.0.113.9", limit, now=T0)
    wait = backend.limiter.hit("vi:203.0.113.9", limit, now=T0)
    now = backend.let_time_pass(T0, wait + 0.02)
    assert backend.limiter.hit("vi:203.0.113.9", limit, now=now) == 0


# --- in-memory only: its clock is the `now` it is given --------------------------------------


def test_the_in_memory_store_forgets_a_challenge_after_its_retention() -> None:
    store = InMemoryChallengeStore(retention_seconds=RETENTION)
    challenge = make_challenge(lifetime=60)
    store.create(challenge)
    store.sweep(now=T0 + 60 + RETENTION + 1, batch_size=10)
    assert store.get(challenge.challenge_id) is None


def test_the_in_memory_store_keeps_an_expired_challenge_until_its_retention_ends() -> None:
    store = InMemoryChallengeStore(retention_seconds=RETENTION)
    challenge = make_challenge(lifetime=60)
    store.create(challenge)
    store.sweep(now=T0 + 60, batch_size=10)
    store.sweep(now=T0 + 60 + RETENTION, batch_size=10)
    assert store.get(challenge.challenge_id) is not None


def test_the_in_memory_limiter_times_the_window_from_its_first_hit() -> None:
    limiter = InMemoryRateLimiter()
    limit = RateLimit(1, 600)
    limiter.hit("cu:alice", limit, now=T0)
    assert limiter.hit("cu:alice", limit, now=T0 + 500) == pytest.approx(100)


# --- Redis only: races between real clients, the key layout, pub/sub -------------------------


@pytest.fixture
def make_redis_store(
    redis_url: str, key_prefix: str
) -> Iterator[Callable[[], RedisChallengeStore]]:
    """Stores on the test's prefix, each with a client (connection pool) of its own."""
    clients: list[redis.Redis] = []

    def make() -> RedisChallengeStore:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        clients.append(client)
        return RedisChallengeStore(
            client, prefix=key_prefix, shards=SHARDS, retention_seconds=RETENTION
        )

    yield make
    for client in clients:
        client.close()


def run_together(workers: list[Callable[[], Any]]) -> list[Any]:
    """Start every worker on its own thread at one barrier; return their results in order."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(index: int, work: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = work()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def sent_on_redis(store: RedisChallengeStore, *, lifetime: float = LIFETIME) -> Challenge:
    challenge = make_challenge(lifetime=lifetime)
    cid = challenge.challenge_id
    store.create(challenge)
    store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=int(lifetime))
    return challenge


def messages(pubsub: redis.client.PubSub, *, until: str) -> list[str]:
    """Messages on a subscription, up to and including `until` (or whatever came in 5 s)."""
    seen: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and until not in seen:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            seen.append(message["data"])
    return seen


def test_concurrent_right_codes_verify_a_challenge_exactly_once(
    make_redis_store: Callable[[], RedisChallengeStore],
) -> None:
    cid = sent_on_redis(make_redis_store()).challenge_id
    stores = [make_redis_store() for _ in range(20)]
    results = run_together(
        [lambda s=s: s.verify_code(cid, [digest(cid)], now=T0 + 1) for s in stores]
    )
    assert Counter(r.transition for r in results) == {
        Transition.DONE: 1,
        Transition.COMPLETED: 19,
    }


def test_concurrent_wrong_codes_never_exceed_the_attempt_limit(
    make_redis_store: Callable[[], RedisChallengeStore],
) -> None:
    store = make_redis_store()
    cid = sent_on_redis(store).challenge_id
    stores = [make_redis_store() for _ in range(20)]
    results = run_together(
        [lambda s=s: s.verify_code(cid, [digest(cid, WRONG)], now=T0 + 1) for s in stores]
    )
    misses = sorted(r.attempts_remaining for r in results if r.transition is Transition.MISMATCH)
    assert misses == [1, 2, 3, 4]
    assert Counter(r.transition for r in results)[Transition.LOCKED] == 16
    stored = store.get(cid)
    assert stored is not None
    assert (stored.status, stored.attempts) == (ChallengeStatus.LOCKED, MAX_ATTEMPTS)


def test_racing_claims_of_one_totp_step_let_exactly_one_through(
    make_redis_store: Callable[[], RedisChallengeStore],
) -> None:
    """Eight processes' worth of clients, each its own connection, one code at one instant."""
    stores = [make_redis_store() for _ in range(8)]
    claims = run_together([lambda s=s: s.claim_totp_step("u", step("f_race", 500)) for s in stores])
    assert sorted(claims) == [False] * 7 + [True]


def test_racing_one_shot_logins_with_one_code_store_exactly_one_challenge(
    make_redis_store: Callable[[], RedisChallengeStore],
) -> None:
    stores = [make_redis_store() for _ in range(8)]
    logins = [verified_challenge(user_id="u") for _ in stores]
    created = run_together(
        [
            lambda s=s, c=c: s.create(c, step_claim=step("f_race", 600))
            for s, c in zip(stores, logins, strict=True)
        ]
    )
    assert sorted(created) == [False] * 7 + [True]
    assert sum(stores[0].get(c.challenge_id) is not None for c in logins) == 1


def test_a_claimed_step_is_kept_for_its_time_then_forgotten(
    make_redis_store: Callable[[], RedisChallengeStore], redis_client: redis.Redis
) -> None:
    store = make_redis_store()
    store.claim_totp_step("u", StepClaim("f_kept", 7, 600))
    key = store.keys.totp_step("u", "f_kept")
    assert 599_000 < redis_client.pttl(key) <= 600_000
    assert redis_client.get(key) in ("7", b"7")


def test_concurrent_wrong_codes_lock_the_challenge_exactly_once(
    make_redis_store: Callable[[], RedisChallengeStore], redis_client: redis.Redis
) -> None:
    store = make_redis_store()
    cid = sent_on_redis(store).challenge_id
    pubsub = redis_client.pubsub()
    pubsub.subscribe(store.keys.channel(cid))
    stores = [make_redis_store() for _ in range(20)]
    run_together([lambda s=s: s.verify_code(cid, [digest(cid, WRONG)], now=T0 + 1) for s in stores])
    # Messages arrive in order: everything the racers published comes before this marker.
    redis_client.publish(store.keys.channel(cid), "end")
    seen = messages(pubsub, until="end")
    pubsub.close()
    assert seen.count("locked") == 1


def test_concurrent_sweepers_report_each_expired_challenge_exactly_once(
    make_redis_store: Callable[[], RedisChallengeStore],
) -> None:
    store = make_redis_store()
    created = {sent_on_redis(store, lifetime=60).challenge_id for _ in range(200)}
    sweepers = [make_redis_store() for _ in range(10)]
    batches = run_together([lambda s=s: s.sweep(now=T0 + 60, batch_size=7) for s in sweepers])
    reported = Counter(e.challenge_id for batch in batches for e in batch)
    assert set(reported) == created
    assert set(reported.values()) == {1}


def test_a_sweep_racing_a_verification_never_both_expires_and_verifies(
    make_redis_store: Callable[[], RedisChallengeStore],
) -> None:
    verifier, sweeper = make_redis_store(), make_redis_store()

    def verify_after(delay: float, cid: str, at: float) -> StoreResult:
        time.sleep(delay)
        return verifier.verify_code(cid, [digest(cid)], now=at - 0.001)

    for round_ in range(40):
        challenge = sent_on_redis(verifier, lifetime=60)
        cid, at = challenge.challenge_id, challenge.expires_at
        # A sweep takes two round trips to a verification's one; staggering the verifier's
        # start by up to 1.4 ms lets either side win, and lets it land between the sweep's
        # read of the due ids and its script.
        delay = (round_ % 8) * 0.0002
        verified, swept = run_together(
            [
                lambda delay=delay, cid=cid, at=at: verify_after(delay, cid, at),
                lambda at=at: sweeper.sweep(now=at, batch_size=10),
            ]
        )
        was_verified = verified.transition is Transition.DONE
        was_expired = cid in {e.challenge_id for e in swept}
        assert was_verified != was_expired
        stored = verifier.get(cid)
        assert stored is not None
        assert stored.status is (
            ChallengeStatus.VERIFIED if was_verified else ChallengeStatus.EXPIRED
        )


def test_a_subscriber_hears_when_a_challenge_is_verified(
    make_redis_store: Callable[[], RedisChallengeStore], redis_client: redis.Redis
) -> None:
    store = make_redis_store()
    cid = sent_on_redis(store).challenge_id
    pubsub = redis_client.pubsub()
    pubsub.subscribe(store.keys.channel(cid))
    store.verify_code(cid, [digest(cid)], now=T0 + 1)
    heard = messages(pubsub, until="verified")
    pubsub.close()
    assert "verified" in heard


def test_a_subscriber_hears_when_a_challenge_expires(
    make_redis_store: Callable[[], RedisChallengeStore], redis_client: redis.Redis
) -> None:
    store = make_redis_store()
    challenge = sent_on_redis(store, lifetime=60)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(store.keys.channel(challenge.challenge_id))
    store.sweep(now=challenge.expires_at, batch_size=10)
    heard = messages(pubsub, until="expired")
    pubsub.close()
    assert "expired" in heard


def test_every_store_key_starts_with_the_prefix_and_carries_a_shard_tag(
    make_redis_store: Callable[[], RedisChallengeStore],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    store = make_redis_store()
    for _ in range(12):
        sent_on_redis(store)
    keys = list(redis_client.scan_iter(match=f"{key_prefix}*"))
    assert keys
    assert all(key.startswith(f"{key_prefix}:{{s") for key in keys)
    assert {key.split("{", 1)[1].split("}", 1)[0] for key in keys} <= {
        f"s{n}" for n in range(SHARDS)
    }


def test_a_challenge_and_its_shard_index_share_one_cluster_slot(
    make_redis_store: Callable[[], RedisChallengeStore],
) -> None:
    store = make_redis_store()
    for shard in range(SHARDS):
        cid = new_challenge_id(shard)
        assert shard_of_challenge(cid) == shard
        assert key_slot(store.keys.challenge(cid).encode()) == key_slot(
            store.keys.due(shard).encode()
        )


def test_the_redis_limiter_counts_each_hit_once_when_the_server_lost_its_scripts(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    limiter = RedisRateLimiter(redis_client, prefix=key_prefix)
    limit = RateLimit(2, 600)
    assert limiter.hit_many([("cu:alice", limit), ("ci:203.0.113.9", limit)], now=T0) == [0, 0]
    redis_client.script_flush()  # a restarted or flushed server: EVALSHA answers NOSCRIPT
    assert limiter.hit_many([("cu:alice", limit), ("ci:203.0.113.9", limit)], now=T0) == [0, 0]
    waits = limiter.hit_many([("cu:alice", limit), ("ci:203.0.113.9", limit)], now=T0)
    assert all(0 < wait <= 600 for wait in waits)


def test_replies_are_parsed_by_hiredis_the_c_parser() -> None:
    """hiredis is a dependency for CPU only: a missing one would otherwise go unnoticed."""
    assert DefaultParser is _HiredisParser
