"""Stateful property test of the challenge store: random interleavings against a simple model.

Hypothesis drives create, claim (a send), verify with the right or a wrong code, a TOTP miss
or success, resend, a push answer, sweep and time passing, on real Redis and on the in-memory
twin; after every step each challenge must match `store_model.ModelChallenge`, and:

- at most one answer ever finishes a challenge (one success at most);
- nothing succeeds after expiry or lock (the model refuses it, the store must too);
- attempts never exceed the limit;
- an expired challenge never reads pending again.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from mfa_pipeline.adapters.redis_store import RedisChallengeStore
from mfa_pipeline.domain.challenges import (
    Challenge,
    ChallengePurpose,
    ChallengeStatus,
    Delivery,
    DeliveryStatus,
    FactorType,
    new_challenge_id,
    shard_of,
)
from mfa_pipeline.domain.codes import code_digest
from mfa_pipeline.ports import Transition
from tests.doubles.memory_store import InMemoryChallengeStore
from tests.integration.store_model import SUCCESS, ModelChallenge

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis

    from mfa_pipeline.ports import ChallengeStore, StoreResult

SHARDS = 4
T0 = 1_700_000_000.0
KEY = b"s" * 32
MAX_ATTEMPTS = 3
MAX_RESENDS = 2
RESEND_INTERVAL = 30.0
SEND_TTL = 90.0
NUMBER = "42"
# Longer than any run's simulated time: the in-memory twin purges by the caller's clock, Redis by
# its own, so records must outlive the whole run in both.
RETENTION = 10**6
FACTORS = (FactorType.SMS, FactorType.TOTP, FactorType.PUSH)

STEPS: dict[str, int] = {"steps": 0, "runs": 0}


def code_of(seq: int) -> str:
    return f"{100000 + seq:06d}"


class StoreMachine(RuleBasedStateMachine):
    make_store: ClassVar[Callable[[], ChallengeStore]]

    ids = Bundle("challenge_ids")

    def __init__(self) -> None:
        super().__init__()
        self.store = type(self).make_store()
        self.now = T0
        self.model: dict[str, ModelChallenge] = {}
        STEPS["runs"] += 1

    def step(self) -> None:
        STEPS["steps"] += 1

    def same(self, got: StoreResult, want: StoreResult, what: str) -> None:
        assert (got.transition, got.status) == (want.transition, want.status), what
        if want.transition in {Transition.MISMATCH, Transition.DONE} and what == "verify":
            assert got.attempts_remaining == want.attempts_remaining
        if want.transition is Transition.TOO_SOON:
            assert got.retry_after == pytest.approx(want.retry_after, abs=0.01)
        if want.transition is Transition.DONE and what == "resend":
            assert got.seq == want.seq

    @initialize()
    def start(self) -> None:
        self.step()

    @rule(
        target=ids,
        factor=st.sampled_from(FACTORS),
        lifetime=st.sampled_from([20.0, 60.0, 120.0]),
    )
    def create(self, factor: FactorType, lifetime: float) -> str:
        self.step()
        user = f"u-{uuid.uuid4().hex[:8]}"
        challenge = Challenge(
            challenge_id=new_challenge_id(shard_of(user, SHARDS)),
            user_id=user,
            factor=factor,
            factor_id="f-1",
            status=ChallengeStatus.PENDING,
            purpose=ChallengePurpose.LOGIN,
            created_at=self.now,
            expires_at=self.now + lifetime,
            attempts=0,
            max_attempts=MAX_ATTEMPTS,
            delivery=Delivery(DeliveryStatus.QUEUED),
            number_match=NUMBER if factor is FactorType.PUSH else None,
        )
        self.store.create(challenge)
        self.model[challenge.challenge_id] = ModelChallenge(
            factor=factor,
            created_at=self.now,
            expires_at=challenge.expires_at,
            max_attempts=MAX_ATTEMPTS,
            number_match=challenge.number_match,
        )
        return challenge.challenge_id

    @rule(challenge_id=ids, stale=st.booleans())
    def claim(self, challenge_id: str, stale: bool) -> None:
        """A worker starts a send of the current sequence (or of an older one: stale)."""
        self.step()
        m = self.model[challenge_id]
        seq = max(0, m.seq - 1) if stale else m.seq
        digest = code_digest(KEY, challenge_id, seq, code_of(seq))
        got = self.store.claim_delivery(challenge_id, seq, digest, now=self.now, ttl_seconds=90)
        self.same(got, m.claim(seq, self.now, SEND_TTL), "claim")

    @rule(challenge_id=ids, which=st.sampled_from(["right", "old", "wrong"]))
    def verify(self, challenge_id: str, which: str) -> None:
        self.step()
        m = self.model[challenge_id]
        seq = {"right": m.seq, "old": m.seq - 1, "wrong": None}[which]
        code = code_of(seq) if seq is not None and seq >= 0 else "999999"
        digest = code_digest(KEY, challenge_id, m.seq, code)
        was_open = m.blocked(self.now) is None
        got = self.store.verify_code(challenge_id, [digest], now=self.now)
        want = m.verify(seq if which == "right" else None, self.now)
        self.same(got, want, "verify")
        if got.transition is Transition.DONE and got.status in SUCCESS:
            assert was_open, "a success after expiry, lock or completion"

    @rule(challenge_id=ids, right=st.booleans())
    def totp(self, challenge_id: str, right: bool) -> None:
        """A TOTP code checked outside the store: `complete` when right, `record_miss` when not."""
        self.step()
        m = self.model[challenge_id]
        was_open = m.blocked(self.now) is None
        if right:
            got = self.store.complete(challenge_id, ChallengeStatus.VERIFIED, now=self.now)
            self.same(got, m.complete(self.now), "complete")
        else:
            got = self.store.record_miss(challenge_id, now=self.now)
            self.same(got, m.verify(None, self.now, compare=False), "verify")
        if got.transition is Transition.DONE:
            assert was_open

    @rule(challenge_id=ids)
    def resend(self, challenge_id: str) -> None:
        self.step()
        m = self.model[challenge_id]
        got = self.store.request_resend(
            challenge_id, now=self.now, max_resends=MAX_RESENDS, min_interval=RESEND_INTERVAL
        )
        want = m.resend(self.now, max_resends=MAX_RESENDS, interval=RESEND_INTERVAL)
        self.same(got, want, "resend")

    @rule(
        challenge_id=ids,
        approve=st.booleans(),
        number=st.sampled_from([NUMBER, "17", None]),
    )
    def answer_push(self, challenge_id: str, approve: bool, number: str | None) -> None:
        self.step()
        m = self.model[challenge_id]
        was_open = m.blocked(self.now) is None
        got = self.store.answer_push(
            challenge_id, approve=approve, number=number, fraud=False, now=self.now
        )
        self.same(got, m.answer_push(approve=approve, number=number, now=self.now), "push")
        if got.status in SUCCESS and got.transition is Transition.DONE:
            assert was_open

    @rule()
    def sweep(self) -> None:
        self.step()
        expired = {e.challenge_id for e in self.store.sweep(now=self.now, batch_size=7)}
        want = {cid for cid, m in self.model.items() if m.sweep(self.now)}
        assert expired == want

    @rule(seconds=st.sampled_from([0.5, 5.0, 19.0, 31.0, 61.0]))
    def advance(self, seconds: float) -> None:
        self.step()
        self.now += seconds

    @rule(challenge_id=consumes(ids))
    def forget(self, challenge_id: str) -> None:
        """Stop acting on one challenge (keeps the bundle small); the invariants still watch it."""
        self.step()
        assert challenge_id in self.model

    @invariant()
    def every_challenge_matches_the_model(self) -> None:
        for challenge_id, m in self.model.items():
            stored = self.store.get(challenge_id)
            assert stored is not None
            assert stored.attempts <= stored.max_attempts
            assert m.finishes <= 1
            assert (stored.status, stored.attempts) == (m.status, m.attempts)
            assert stored.expires_at == pytest.approx(m.expires_at, abs=0.001)
            seen = stored.status_at(self.now)
            if m.ever_expired:
                assert seen is not ChallengeStatus.PENDING, "an expired challenge came back"
            m.ever_expired = m.ever_expired or seen is ChallengeStatus.EXPIRED


# Runs of up to 50 steps each, per store. A run draws new interleavings every time (no example
# database), so CI runs add up; MFA_STATEFUL_EXAMPLES raises it for a deeper run.
RUN = settings(
    max_examples=int(os.environ.get("MFA_STATEFUL_EXAMPLES", "75")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


def run(make_store: Callable[[], ChallengeStore]) -> None:
    machine = type("Machine", (StoreMachine,), {"make_store": staticmethod(make_store)})
    before = dict(STEPS)
    run_state_machine_as_test(machine, settings=RUN)  # type: ignore[arg-type]
    print(  # the closing report counts these (pytest -s shows them)
        f"\nstate machine: {STEPS['runs'] - before['runs']} runs, "
        f"{STEPS['steps'] - before['steps']} steps"
    )


def test_the_redis_store_follows_the_model_through_random_interleavings(
    redis_client: redis.Redis,
) -> None:
    run(
        lambda: RedisChallengeStore(
            redis_client,
            prefix=f"sm{uuid.uuid4().hex[:8]}",
            shards=SHARDS,
            retention_seconds=RETENTION,
        )
    )


def test_the_in_memory_store_follows_the_model_through_random_interleavings() -> None:
    run(lambda: InMemoryChallengeStore(retention_seconds=RETENTION))
