"""Challenges and rate windows in memory: the twins of the Redis adapters.

Used by unit tests and the embedded mode. Each method follows the Lua script of the same
name in `lua/` step by step, under one lock, as each script runs atomically in Redis. The
conformance suite (`tests/integration/test_challenge_store.py`) runs against both stores,
so the twin cannot drift from the real thing.

Redis forgets a key when its TTL runs out in wall-clock time. Here the store's time is the
latest `now` (or `created_at`) it has been given, and a record is forgotten once that passes
the record's end of retention.
"""

from __future__ import annotations

import bisect
import hmac
import math
import threading
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import TYPE_CHECKING

from mfa_pipeline.adapters.redis_store import MAX_BATCHES_PER_SHARD
from mfa_pipeline.domain.challenges import (
    Challenge,
    ChallengeStatus,
    DeliveryStatus,
    FactorType,
    RequestContext,
    is_well_formed_challenge_id,
    shard_of_challenge,
)
from mfa_pipeline.ports import (
    ChallengeStore,
    ExpiredChallenge,
    IdempotencyMark,
    RateLimiter,
    StaleDelivery,
    StepClaim,
    StoreResult,
    Transition,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mfa_pipeline.domain.limits import RateLimit

# What a call on a challenge in a final status is told (`FINAL_TRANSITION` in `_common.lua`).
_FINAL_TRANSITION = {
    ChallengeStatus.EXPIRED: Transition.EXPIRED,
    ChallengeStatus.LOCKED: Transition.LOCKED,
}

_score = itemgetter(0)

# How far along a delivery is (`RANK` in `record_provider_status.lua`): a provider's report is
# applied only when it ranks above the stored status.
_REPORT_RANK = {
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.UNDELIVERED: 2,
    DeliveryStatus.FAILED: 2,
}
# Statuses only a provider's report sets after `sent`.
_REPORTED = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED})


@dataclass(slots=True)
class _Record:
    """A stored challenge with what the Redis hash holds besides: the code hash and claim."""

    challenge: Challenge
    purge_at: float
    code_hash: str | None = None  # `chash`
    claimed_seq: int = -1  # `cseq`: the send sequence last claimed


class _DueIndex:
    """One shard's pending challenges ordered by expiry, as a Redis sorted set orders them."""

    def __init__(self) -> None:
        self._entries: list[tuple[float, str]] = []
        self._scores: dict[str, float] = {}

    def add(self, challenge_id: str, score: float) -> None:
        self.remove(challenge_id)
        bisect.insort(self._entries, (score, challenge_id))
        self._scores[challenge_id] = score

    def remove(self, challenge_id: str) -> None:
        score = self._scores.pop(challenge_id, None)
        if score is not None:
            del self._entries[bisect.bisect_left(self._entries, (score, challenge_id))]

    def due(self, now: float, limit: int) -> list[str]:
        """The first `limit` ids due by `now` (`ZRANGEBYSCORE -inf now LIMIT 0 limit`)."""
        end = bisect.bisect_right(self._entries, now, key=_score)
        if limit >= 0:  # Redis reads a negative count as "all"
            end = min(end, limit)
        return [challenge_id for _, challenge_id in self._entries[:end]]


def _as_stored(challenge: Challenge) -> Challenge:
    """The challenge as the Redis store reads it back: an empty string reads as absent."""
    c = challenge
    return replace(
        c,
        factor_id=c.factor_id or None,
        context=RequestContext(
            ip=c.context.ip or None,
            user_agent=c.context.user_agent or None,
            application=c.context.application or None,
        ),
        delivery=replace(
            c.delivery,
            provider_id=c.delivery.provider_id or None,
            error_code=c.delivery.error_code or None,
        ),
        number_match=c.number_match or None,
        ceremony=c.ceremony or None,
    )


def _blocked(challenge: Challenge, now: float) -> StoreResult | None:
    """Why a stored challenge cannot change now, or None when it is pending and unexpired."""
    status = challenge.status
    if status is not ChallengeStatus.PENDING:
        return StoreResult(_FINAL_TRANSITION.get(status, Transition.COMPLETED), status)
    if now >= challenge.expires_at:
        return StoreResult(Transition.EXPIRED, status)
    return None


class InMemoryChallengeStore(ChallengeStore):
    """`ChallengeStore` in one process's memory; each operation holds one lock, hence atomic."""

    def __init__(self, *, retention_seconds: int = 3600) -> None:
        self._retention = float(retention_seconds)
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        # factor id -> last accepted TOTP step.
        self._totp_steps: dict[str, int] = {}
        self._due: dict[int, _DueIndex] = {}
        self._now = -math.inf
        # When `stale_deliveries` last returned each challenge (Redis keeps it as the score).
        self._republished: dict[str, float] = {}
        # (user, key digest) -> challenge id, as `create.lua` writes its idempotency marker.
        self.idempotency_markers: dict[tuple[str, str], str] = {}

    # --- bookkeeping (callers hold the lock) -------------------------------------------------

    def _advance(self, now: float) -> None:
        self._now = max(self._now, now)

    def _live(self, challenge_id: str) -> _Record | None:
        record = self._records.get(challenge_id)
        if record is not None and self._now > record.purge_at:
            # Like an expired Redis key: gone, while its index entry waits for a sweep.
            del self._records[challenge_id]
            return None
        return record

    def _index(self, challenge_id: str) -> _DueIndex:
        return self._due.setdefault(shard_of_challenge(challenge_id), _DueIndex())

    def _open(self, challenge_id: str, now: float) -> _Record | StoreResult:
        """The record of a pending, unexpired challenge, or why it cannot change now."""
        self._advance(now)
        record = self._live(challenge_id) if is_well_formed_challenge_id(challenge_id) else None
        if record is None:
            return StoreResult(Transition.NOT_FOUND)
        return _blocked(record.challenge, now) or record

    def _finish(self, record: _Record, status: ChallengeStatus, now: float) -> None:
        """Close a pending challenge: final status, out of the expiry index, kept for retention."""
        record.challenge = replace(record.challenge, status=status, completed_at=now)
        self._index(record.challenge.challenge_id).remove(record.challenge.challenge_id)
        record.purge_at = now + self._retention

    # --- the port ----------------------------------------------------------------------------

    def create(
        self,
        challenge: Challenge,
        *,
        idempotency: IdempotencyMark | None = None,
        step_claim: StepClaim | None = None,
    ) -> bool:
        c = challenge
        with self._lock:
            self._advance(c.created_at)
            if self._live(c.challenge_id) is not None:
                return True
            if step_claim is not None and not self._claim(step_claim):
                return False
            if idempotency is not None:
                self.idempotency_markers[(c.user_id, idempotency.digest)] = c.challenge_id
            life = max(0.0, c.expires_at - c.created_at) if not c.status.is_final else 0.0
            self._records[c.challenge_id] = _Record(
                _as_stored(c), purge_at=c.created_at + life + self._retention
            )
            if c.status is ChallengeStatus.PENDING:
                self._index(c.challenge_id).add(c.challenge_id, c.expires_at)
            return True

    def get(self, challenge_id: str) -> Challenge | None:
        if not is_well_formed_challenge_id(challenge_id):
            return None
        with self._lock:
            record = self._live(challenge_id)
            return None if record is None else record.challenge

    def verify_code(
        self, challenge_id: str, candidates: Sequence[str], *, now: float
    ) -> StoreResult:
        return self._check(challenge_id, candidates, now=now, compare=True)

    def record_miss(self, challenge_id: str, *, now: float) -> StoreResult:
        return self._check(challenge_id, (), now=now, compare=False)

    def claim_totp_step(self, user_id: str, claim: StepClaim) -> bool:  # noqa: ARG002
        with self._lock:
            return self._claim(claim)

    def _claim(self, claim: StepClaim) -> bool:
        # Kept for the twin's life, not `keep_seconds`: a test run is shorter than the TTL.
        last = self._totp_steps.get(claim.factor_id)
        if last is not None and claim.step <= last:
            return False
        self._totp_steps[claim.factor_id] = claim.step
        return True

    def _check(
        self, challenge_id: str, candidates: Sequence[str], *, now: float, compare: bool
    ) -> StoreResult:
        with self._lock:
            record = self._open(challenge_id, now)
            if isinstance(record, StoreResult):
                return record
            c = record.challenge
            stored = record.code_hash
            if compare and stored and any(_same(candidate, stored) for candidate in candidates):
                self._finish(record, ChallengeStatus.VERIFIED, now)
                return StoreResult(
                    Transition.DONE, ChallengeStatus.VERIFIED, c.max_attempts - c.attempts
                )
            attempts = c.attempts + 1
            record.challenge = replace(c, attempts=attempts)
            if attempts >= c.max_attempts:
                self._finish(record, ChallengeStatus.LOCKED, now)
                return StoreResult(Transition.LOCKED, ChallengeStatus.LOCKED)
            return StoreResult(
                Transition.MISMATCH, ChallengeStatus.PENDING, c.max_attempts - attempts
            )

    def complete(self, challenge_id: str, status: ChallengeStatus, *, now: float) -> StoreResult:
        with self._lock:
            record = self._open(challenge_id, now)
            if isinstance(record, StoreResult):
                return record
            c = record.challenge
            self._finish(record, status, now)
            return StoreResult(Transition.DONE, status, c.max_attempts - c.attempts)

    def answer_push(
        self, challenge_id: str, *, approve: bool, number: str | None, fraud: bool, now: float
    ) -> StoreResult:
        with self._lock:
            record = self._open(challenge_id, now)
            if isinstance(record, StoreResult):
                return record
            c = record.challenge
            if c.factor is not FactorType.PUSH:
                return StoreResult(Transition.MISMATCH, c.status)
            right = approve and number is not None and number == c.number_match
            status = ChallengeStatus.APPROVED if right else ChallengeStatus.DENIED
            if fraud:
                record.challenge = replace(c, fraud_reported=True)
            self._finish(record, status, now)
            return StoreResult(Transition.DONE, status)

    def claim_delivery(
        self,
        challenge_id: str,
        seq: int,
        code_hash: str,
        *,
        now: float,
        ttl_seconds: int,
        in_flight_seconds: float = 0,
    ) -> StoreResult:
        with self._lock:
            record = self._open(challenge_id, now)
            if isinstance(record, StoreResult):
                return record
            c = record.challenge
            if seq < c.send_seq:
                return StoreResult(Transition.STALE, ChallengeStatus.PENDING)
            if record.claimed_seq == seq:
                if c.delivery.status is DeliveryStatus.SENDING:
                    age = now - (c.delivery.updated_at or 0.0)
                    if age < in_flight_seconds:
                        return StoreResult(Transition.IN_FLIGHT, ChallengeStatus.PENDING)
                    return StoreResult(Transition.INTERRUPTED, ChallengeStatus.PENDING)
                if c.delivery.status is not DeliveryStatus.RETRYING:
                    return StoreResult(Transition.DUPLICATE, ChallengeStatus.PENDING)
            expires_at = now + ttl_seconds
            record.code_hash = code_hash
            record.claimed_seq = seq
            record.challenge = replace(
                c,
                expires_at=expires_at,
                delivery=replace(
                    c.delivery,
                    status=DeliveryStatus.SENDING,
                    attempts=c.delivery.attempts + 1,
                    updated_at=now,
                ),
            )
            self._index(challenge_id).add(challenge_id, expires_at)
            record.purge_at = now + ttl_seconds + self._retention
            return StoreResult(Transition.DONE, ChallengeStatus.PENDING)

    def record_delivery(
        self,
        challenge_id: str,
        seq: int,
        *,
        status: str,
        now: float,
        provider_id: str | None = None,
        error_code: str | None = None,
        fail_challenge: bool = False,
    ) -> StoreResult:
        if not is_well_formed_challenge_id(challenge_id):
            return StoreResult(Transition.NOT_FOUND)
        # An unknown status raises here; Redis would store it and fail on the next `get`.
        delivery_status = DeliveryStatus(status)
        with self._lock:
            self._advance(now)
            record = self._live(challenge_id)
            if record is None:
                return StoreResult(Transition.NOT_FOUND)
            c = record.challenge
            if seq != c.send_seq:  # superseded by a resend (or not a sequence of this one)
                return StoreResult(Transition.STALE, c.status)
            stored_status = delivery_status
            if (
                delivery_status is DeliveryStatus.SENT
                and provider_id
                and provider_id == c.delivery.provider_id
                and c.delivery.status in _REPORTED
            ):
                # The provider's report on this very message overtook this record: it stays.
                stored_status = c.delivery.status
            delivery = replace(c.delivery, status=stored_status, updated_at=now)
            if provider_id:
                delivery = replace(delivery, provider_id=provider_id)
            if error_code:
                delivery = replace(delivery, error_code=error_code)
            if delivery_status is DeliveryStatus.SENT:
                delivery = replace(delivery, sent_at=now)
            if delivery_status in (DeliveryStatus.FAILED, DeliveryStatus.RETRYING):
                record.code_hash = None
            record.challenge = replace(c, delivery=delivery)
            if fail_challenge and c.status is ChallengeStatus.PENDING:
                self._finish(record, ChallengeStatus.FAILED, now)
                return StoreResult(Transition.DONE, ChallengeStatus.FAILED)
            return StoreResult(Transition.DONE, c.status)

    def record_provider_status(  # noqa: PLR0911 - one return per script outcome, as in Lua
        self,
        challenge_id: str,
        seq: int,
        *,
        provider_id: str,
        status: str,
        now: float,
        error_code: str | None = None,
    ) -> StoreResult:
        if not is_well_formed_challenge_id(challenge_id):
            return StoreResult(Transition.NOT_FOUND)
        reported = DeliveryStatus(status)
        with self._lock:
            self._advance(now)
            record = self._live(challenge_id)
            if record is None:
                return StoreResult(Transition.NOT_FOUND)
            c = record.challenge
            if seq != c.send_seq:
                return StoreResult(Transition.STALE, c.status)
            if c.delivery.provider_id:
                if c.delivery.provider_id != provider_id:
                    return StoreResult(Transition.STALE, c.status)
            elif c.delivery.status is not DeliveryStatus.SENDING or record.claimed_seq != seq:
                return StoreResult(Transition.STALE, c.status)
            if _REPORT_RANK.get(reported, 0) <= _REPORT_RANK.get(c.delivery.status, 0):
                return StoreResult(Transition.DUPLICATE, c.status)
            delivery = replace(c.delivery, status=reported, provider_id=provider_id, updated_at=now)
            if error_code:
                delivery = replace(delivery, error_code=error_code)
            record.challenge = replace(c, delivery=delivery)
            return StoreResult(Transition.DONE, c.status)

    def request_resend(
        self, challenge_id: str, *, now: float, max_resends: int, min_interval: float
    ) -> StoreResult:
        with self._lock:
            record = self._open(challenge_id, now)
            if isinstance(record, StoreResult):
                return record
            c = record.challenge
            if c.resends >= max_resends:
                return StoreResult(Transition.EXHAUSTED, ChallengeStatus.PENDING)
            last = c.last_resend_at if c.last_resend_at is not None else c.created_at
            wait = last + min_interval - now
            if wait > 0:
                return StoreResult(Transition.TOO_SOON, ChallengeStatus.PENDING, retry_after=wait)
            seq = c.send_seq + 1
            record.code_hash = None  # the old code dies at once; the next claim stores the new one
            record.challenge = replace(
                c,
                resends=c.resends + 1,
                last_resend_at=now,
                send_seq=seq,
                delivery=replace(
                    c.delivery, status=DeliveryStatus.QUEUED, provider_id=None, error_code=None
                ),
            )
            return StoreResult(Transition.DONE, ChallengeStatus.PENDING, seq=seq)

    def ping(self) -> None:
        """Always reachable: it lives in this process."""

    def sweep(self, *, now: float, batch_size: int) -> list[ExpiredChallenge]:
        with self._lock:
            self._advance(now)
            shards = sorted(self._due)
        expired: list[ExpiredChallenge] = []
        for shard in shards:
            for _ in range(MAX_BATCHES_PER_SHARD):
                seen, batch = self._sweep_batch(shard, now=now, batch_size=batch_size)
                expired += batch
                if seen < batch_size:
                    break
        return expired

    def _sweep_batch(
        self, shard: int, *, now: float, batch_size: int
    ) -> tuple[int, list[ExpiredChallenge]]:
        """One bounded batch of one shard: read the due ids and expire them, atomically."""
        with self._lock:
            ids = self._due[shard].due(now, batch_size)
            if not ids:
                return 0, []
            return len(ids), self._expire_batch(shard, ids, now)

    def _expire_batch(self, shard: int, ids: list[str], now: float) -> list[ExpiredChallenge]:
        """Expire the given ids that are pending and past expiry; drop the others from the index."""
        index = self._due[shard]
        expired: list[ExpiredChallenge] = []
        for challenge_id in ids:
            record = self._live(challenge_id)
            if record is None or record.challenge.status is not ChallengeStatus.PENDING:
                index.remove(challenge_id)
                continue
            c = record.challenge
            if now >= c.expires_at:
                self._finish(record, ChallengeStatus.EXPIRED, now)
                expired.append(
                    ExpiredChallenge(
                        challenge_id=challenge_id,
                        user_id=c.user_id,
                        factor=c.factor.value,
                        application=c.context.application,
                        api_application=c.context.api_application,
                    )
                )
        return expired

    def stale_deliveries(
        self, *, now: float, stale_seconds: float, retry_grace_seconds: float, batch_size: int
    ) -> list[StaleDelivery]:
        """As `redeliver.lua`, by a scan: sends of pending challenges that stopped moving."""
        waiting = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.RETRYING)
        found: list[StaleDelivery] = []
        with self._lock:
            self._advance(now)
            for challenge_id, record in list(self._records.items()):
                c = record.challenge
                if (
                    len(found) >= batch_size
                    or c.status is not ChallengeStatus.PENDING
                    or now >= c.expires_at
                    or c.delivery.status not in waiting
                ):
                    continue
                since = max(
                    c.delivery.updated_at or c.created_at,
                    c.last_resend_at or 0.0,
                    self._republished.get(challenge_id, -math.inf),
                )
                if c.delivery.status is DeliveryStatus.RETRYING:
                    since += retry_grace_seconds
                if now - since >= stale_seconds:
                    self._republished[challenge_id] = now
                    found.append(StaleDelivery(challenge_id, c.user_id, c.factor.value, c.send_seq))
        return found


def _same(candidate: str, stored: str) -> bool:
    return hmac.compare_digest(candidate.encode(), stored.encode())


@dataclass(slots=True)
class _Window:
    ends_at: float
    count: int = 0


class InMemoryRateLimiter(RateLimiter):
    """Fixed windows, as `RedisRateLimiter` keeps them, timed by the `now` passed in.

    A window opens at a key's first hit and lasts `window_seconds`; every hit counts, the
    refused ones too, and none moves the window's end.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def hit(self, key: str, limit: RateLimit, *, now: float) -> float:
        with self._lock:
            window = self._windows.get(key)
            if window is None or now >= window.ends_at:
                window = self._windows[key] = _Window(ends_at=now + limit.window_seconds)
            window.count += 1
            if window.count > limit.count:
                return window.ends_at - now
            return 0.0
