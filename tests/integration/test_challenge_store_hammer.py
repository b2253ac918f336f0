"""Concurrency hammer: processes and threads race verify, answer, resend and sweep on the same
challenges of one real Redis; the store's invariants hold whatever the interleaving.

Each process has its own connections and threads; every operation's result is collected and
checked afterwards: at most one success per challenge, none at or after expiry, attempts never
past the limit, and the stored end state agrees with the results (a success is what is stored;
a challenge seen expired or locked never succeeded).
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

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

if TYPE_CHECKING:
    from mfa_pipeline.ports import ChallengeStore, StoreResult

SHARDS = 4
T0 = 1_700_000_000.0
KEY = b"h" * 32
MAX_ATTEMPTS = 5
PROCESSES = 4
THREADS = 6
OPS_PER_THREAD = 120
CHALLENGES_PER_FACTOR = 12
SUCCESS = {"verified", "approved"}
# Simulated seconds per real second: lifetimes of 0.5, 2 and 6 simulated seconds end mid-hammer.
SPEED = 12.0


@dataclass(frozen=True)
class Target:
    challenge_id: str
    factor: str
    expires_at: float


def store_for(url: str, prefix: str) -> RedisChallengeStore:
    client = redis.Redis.from_url(url, decode_responses=True)
    return RedisChallengeStore(client, prefix=prefix, shards=SHARDS, retention_seconds=3600)


def apply(store: ChallengeStore, t: Target, op: str, now: float) -> StoreResult:
    """One operation of the hammer on target `t`, as the service would make it."""
    if t.factor == "push" and op in {"approve", "deny", "right"}:
        return store.answer_push(
            t.challenge_id, approve=op != "deny", number="42", fraud=False, now=now
        )
    if t.factor == "totp" and op in {"right", "miss"}:
        if op == "right":
            return store.complete(t.challenge_id, ChallengeStatus.VERIFIED, now=now)
        return store.record_miss(t.challenge_id, now=now)
    if op == "resend":
        return store.request_resend(t.challenge_id, now=now, max_resends=3, min_interval=0)
    code = "100000" if op == "right" else "999999"
    digest = code_digest(KEY, t.challenge_id, 0, code)
    return store.verify_code(t.challenge_id, [digest], now=now)


def hammer(
    url: str, prefix: str, targets: list[Target], seed: int, start: float
) -> list[tuple[str, ...]]:
    """One process: threads doing random operations; returns (id, op, transition, status, now)."""
    store = store_for(url, prefix)
    results: list[tuple[str, ...]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(thread_seed: int) -> None:
        try:
            operate(thread_seed)
        except BaseException as exc:  # reported below: a lost thread must not vanish
            errors.append(exc)

    def operate(thread_seed: int) -> None:
        rng = random.Random(thread_seed)
        mine: list[tuple[str, ...]] = []
        time.sleep(max(0.0, start - time.time()))  # every process starts at once
        for _ in range(OPS_PER_THREAD):
            t = rng.choice(targets)
            # One shared clock, running fast: some challenges expire during the hammer.
            now = T0 + (time.time() - start) * SPEED
            op = rng.choice(["right", "wrong", "resend", "sweep", "approve", "deny", "miss"])
            if op == "sweep":
                swept = store.sweep(now=now, batch_size=5)
                mine += [(e.challenge_id, "sweep", "expired", "expired", repr(now)) for e in swept]
                continue
            r = apply(store, t, op, now)
            status = r.status.value if r.status else ""
            mine.append((t.challenge_id, op, r.transition.value, status, repr(now)))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(seed * 100 + i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


def seed_challenges(store: RedisChallengeStore) -> list[Target]:
    targets = []
    for factor in (FactorType.SMS, FactorType.TOTP, FactorType.PUSH):
        for i in range(CHALLENGES_PER_FACTOR):
            user = f"u-{uuid.uuid4().hex[:8]}"
            lifetime = (0.5, 2.0, 6.0)[i % 3]
            challenge = Challenge(
                challenge_id=new_challenge_id(shard_of(user, SHARDS)),
                user_id=user,
                factor=factor,
                factor_id="f-1",
                status=ChallengeStatus.PENDING,
                purpose=ChallengePurpose.LOGIN,
                created_at=T0,
                expires_at=T0 + lifetime,
                attempts=0,
                max_attempts=MAX_ATTEMPTS,
                delivery=Delivery(DeliveryStatus.QUEUED),
                number_match="42" if factor is FactorType.PUSH else None,
            )
            store.create(challenge)
            expires_at = challenge.expires_at
            if factor is FactorType.SMS:  # the code of send 0 lives `lifetime` from T0
                digest = code_digest(KEY, challenge.challenge_id, 0, "100000")
                claimed = store.claim_delivery(
                    challenge.challenge_id, 0, digest, now=T0, ttl_seconds=lifetime
                )
                assert claimed.transition is Transition.DONE
            targets.append(Target(challenge.challenge_id, factor.value, expires_at))
    return targets


def test_racing_processes_and_threads_never_break_the_store_invariants(
    redis_url: str, key_prefix: str
) -> None:
    store = store_for(redis_url, key_prefix)
    targets = seed_challenges(store)
    context = multiprocessing.get_context("spawn")
    start = time.time() + 3.0  # after every spawned process has imported the project
    with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
        futures = [
            pool.submit(hammer, redis_url, key_prefix, targets, seed, start)
            for seed in range(PROCESSES)
        ]
        results = [row for f in futures for row in f.result(timeout=120)]
    assert len(results) >= PROCESSES * THREADS * OPS_PER_THREAD * 0.8  # sweeps add rows

    by_id: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for row in results:
        by_id[row[0]].append(row)
    expiry = {t.challenge_id: t.expires_at for t in targets}
    finishes = 0
    for target in targets:
        rows = by_id[target.challenge_id]
        wins = [r for r in rows if r[2] == "done" and r[3] in SUCCESS]
        assert len(wins) <= 1, f"{target.factor} challenge succeeded {len(wins)} times"
        answered = [r for r in rows if r[2] == "done" and r[3] in SUCCESS | {"denied"}]
        assert len(answered) <= 1
        for win in wins:
            assert float(win[4]) < expiry[target.challenge_id], "a success at or after expiry"
        stored = store.get(target.challenge_id)
        assert stored is not None
        assert stored.attempts <= stored.max_attempts
        if wins:
            assert stored.status.value == wins[0][3]
        if any(r[2] == "locked" for r in rows) or any(r[1] == "sweep" for r in rows):
            assert not wins or stored.status.value in SUCCESS
            assert stored.status is not ChallengeStatus.PENDING
        finishes += len(answered)
    assert finishes > 0  # the hammer did reach successes, not only refusals
    outcomes = Counter(row[2] for row in results)
    print(f"\nhammer: {len(results)} operations, {finishes} answers won, {dict(outcomes)}")
    # A last sweep far past every expiry leaves nothing pending.
    store.sweep(now=T0 + 100, batch_size=50)
    assert all(
        (c := store.get(t.challenge_id)) is not None and c.status is not ChallengeStatus.PENDING
        for t in targets
    )
