"""A deliberately simple model of one challenge, as the store's scripts are meant to behave.

Shared by the stateful property test and the concurrency hammer: both check the real stores
(Redis and the in-memory twin) against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mfa_pipeline.domain.challenges import ChallengeStatus, FactorType
from mfa_pipeline.ports import StoreResult, Transition

_FINAL = {
    ChallengeStatus.EXPIRED: Transition.EXPIRED,
    ChallengeStatus.LOCKED: Transition.LOCKED,
}
SUCCESS = {ChallengeStatus.VERIFIED, ChallengeStatus.APPROVED}


@dataclass
class ModelChallenge:
    factor: FactorType
    created_at: float
    expires_at: float
    max_attempts: int
    number_match: str | None = None
    status: ChallengeStatus = ChallengeStatus.PENDING
    attempts: int = 0
    seq: int = 0
    claimed_seq: int | None = None
    sending: bool = False
    code_seq: int | None = None  # the send whose code hash is stored, if any
    resends: int = 0
    last_resend_at: float | None = None
    finishes: int = 0  # changes into a final status made by an answer (verify, complete, push)
    ever_expired: bool = False

    def blocked(self, now: float) -> StoreResult | None:
        if self.status is not ChallengeStatus.PENDING:
            return StoreResult(_FINAL.get(self.status, Transition.COMPLETED), self.status)
        if now >= self.expires_at:
            return StoreResult(Transition.EXPIRED, self.status)
        return None

    def _finish(self, status: ChallengeStatus) -> None:
        self.status = status
        if status not in {ChallengeStatus.EXPIRED, ChallengeStatus.LOCKED}:
            self.finishes += 1

    def verify(self, code_seq: int | None, now: float, *, compare: bool = True) -> StoreResult:
        blocked = self.blocked(now)
        if blocked:
            return blocked
        if compare and code_seq is not None and code_seq == self.code_seq:
            self._finish(ChallengeStatus.VERIFIED)
            return StoreResult(
                Transition.DONE, ChallengeStatus.VERIFIED, self.max_attempts - self.attempts
            )
        self.attempts += 1
        if self.attempts >= self.max_attempts:
            self.status = ChallengeStatus.LOCKED
            return StoreResult(Transition.LOCKED, ChallengeStatus.LOCKED)
        return StoreResult(
            Transition.MISMATCH, ChallengeStatus.PENDING, self.max_attempts - self.attempts
        )

    def complete(self, now: float) -> StoreResult:
        blocked = self.blocked(now)
        if blocked:
            return blocked
        self._finish(ChallengeStatus.VERIFIED)
        return StoreResult(
            Transition.DONE, ChallengeStatus.VERIFIED, self.max_attempts - self.attempts
        )

    def answer_push(self, *, approve: bool, number: str | None, now: float) -> StoreResult:
        blocked = self.blocked(now)
        if blocked:
            return blocked
        if self.factor is not FactorType.PUSH:
            return StoreResult(Transition.MISMATCH, self.status)
        right = approve and number is not None and number == self.number_match
        self._finish(ChallengeStatus.APPROVED if right else ChallengeStatus.DENIED)
        return StoreResult(Transition.DONE, self.status)

    def claim(self, seq: int, now: float, ttl: float) -> StoreResult:
        blocked = self.blocked(now)
        if blocked:
            return blocked
        if seq < self.seq:
            return StoreResult(Transition.STALE, ChallengeStatus.PENDING)
        if self.claimed_seq == seq:
            if self.sending:
                return StoreResult(Transition.INTERRUPTED, ChallengeStatus.PENDING)
            return StoreResult(Transition.DUPLICATE, ChallengeStatus.PENDING)
        self.claimed_seq, self.code_seq, self.sending = seq, seq, True
        self.expires_at = now + ttl
        return StoreResult(Transition.DONE, ChallengeStatus.PENDING)

    def resend(self, now: float, *, max_resends: int, interval: float) -> StoreResult:
        blocked = self.blocked(now)
        if blocked:
            return blocked
        if self.resends >= max_resends:
            return StoreResult(Transition.EXHAUSTED, ChallengeStatus.PENDING)
        wait = (self.last_resend_at or self.created_at) + interval - now
        if wait > 0:
            return StoreResult(Transition.TOO_SOON, ChallengeStatus.PENDING, retry_after=wait)
        self.seq += 1
        self.resends += 1
        self.last_resend_at = now
        self.code_seq = None
        self.sending = False
        return StoreResult(Transition.DONE, ChallengeStatus.PENDING, seq=self.seq)

    def sweep(self, now: float) -> bool:
        if self.status is ChallengeStatus.PENDING and now >= self.expires_at:
            self.status = ChallengeStatus.EXPIRED
            return True
        return False
