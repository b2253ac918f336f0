"""Checking a code against a challenge: shared by login verification and factor activation."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import structlog

from mfa_pipeline.domain.challenges import Challenge, ChallengeStatus
from mfa_pipeline.domain.codes import code_digest
from mfa_pipeline.domain.errors import (
    ChallengeCompletedError,
    ChallengeExpiredError,
    MfaError,
    NotFoundError,
    TooManyAttemptsError,
    WrongCodeError,
)
from mfa_pipeline.domain.totp import STEP_CLAIM_SECONDS, TotpOutcome, check_totp
from mfa_pipeline.ports import StepClaim, StoreResult, Transition

if TYPE_CHECKING:
    from mfa_pipeline.domain.factors import Factor
    from mfa_pipeline.ports import ChallengeStore, SecretBox

log = structlog.get_logger(__name__)


def totp_context(factor: Factor) -> str:
    """What a TOTP secret's ciphertext is bound to: moved to another row, it will not decrypt."""
    return f"totp:{factor.user_id}:{factor.factor_id}"


def phone_context(factor: Factor) -> str:
    return f"sms:{factor.user_id}:{factor.factor_id}"


_REFUSALS: dict[Transition, tuple[type[MfaError], str]] = {
    Transition.NOT_FOUND: (NotFoundError, "No such challenge."),
    Transition.EXPIRED: (ChallengeExpiredError, "This challenge has expired; start a new one."),
    Transition.LOCKED: (TooManyAttemptsError, "Too many wrong codes; this challenge is locked."),
}


def raise_for_blocked(result: StoreResult) -> None:
    """Map a store refusal onto the contract's errors; return when the change was made."""
    t = result.transition
    if t is Transition.DONE:
        return
    if t is Transition.MISMATCH:
        raise WrongCodeError(
            "That code is not correct.", attempts_remaining=result.attempts_remaining
        )
    if t in _REFUSALS:
        error, message = _REFUSALS[t]
        raise error(message)
    raise ChallengeCompletedError(
        "This challenge is already completed.",
        status=result.status.value if result.status else None,
    )


def ensure_open(challenge: Challenge, now: float) -> None:
    """Refuse early, without touching any secret, when the challenge can no longer change."""
    status = challenge.status_at(now)
    if status is ChallengeStatus.PENDING:
        return
    transition = {
        ChallengeStatus.EXPIRED: Transition.EXPIRED,
        ChallengeStatus.LOCKED: Transition.LOCKED,
    }.get(status, Transition.COMPLETED)
    raise_for_blocked(StoreResult(transition, status))


class CodeVerifier:
    """Checks SMS codes (hashes compared in the store) and TOTP codes (against the factor)."""

    def __init__(self, *, store: ChallengeStore, secrets: SecretBox) -> None:
        self._store = store
        self._secrets = secrets

    def check_sms(self, challenge: Challenge, code: str, *, now: float) -> StoreResult:
        candidates = [
            code_digest(key, challenge.challenge_id, challenge.send_seq, code)
            for key in self._secrets.code_keys()
        ]
        result = self._store.verify_code(challenge.challenge_id, candidates, now=now)
        raise_for_blocked(result)
        return result

    def check_totp(
        self, challenge: Challenge | None, factor: Factor, code: str, *, now: float
    ) -> int:
        """Accept `code` once; return the accepted step. Misses count on `challenge` when given."""
        claim = self.totp_claim(challenge, factor, code, now=now)
        # The store's compare-and-set is what makes a code single use across processes.
        if not self._store.claim_totp_step(factor.user_id, claim):
            self.refuse_totp(
                challenge, factor.factor_id, factor.user_id, TotpOutcome.REPLAYED, now=now
            )
        return claim.step

    def totp_claim(
        self, challenge: Challenge | None, factor: Factor, code: str, *, now: float
    ) -> StepClaim:
        """The step `code` matches, to claim; a code that matches none is refused here.

        A one-shot login claims the step as it stores its challenge (one round trip); the
        caller then refuses a claim the store turns down with `refuse_totp(..., REPLAYED)`.
        """
        secret = self._secrets.decrypt(factor.secret_ciphertext or "", context=totp_context(factor))
        match = check_totp(secret, code, now=now)
        if match.outcome is not TotpOutcome.ACCEPTED or match.step is None:
            self.refuse_totp(challenge, factor.factor_id, factor.user_id, match.outcome, now=now)
        return StepClaim(factor.factor_id, match.step, STEP_CLAIM_SECONDS)

    def refuse_totp(
        self,
        challenge: Challenge | None,
        factor_id: str,
        user_id: str,
        outcome: TotpOutcome,
        *,
        now: float,
    ) -> NoReturn:
        """Count the miss on `challenge` when given, log it, and raise the user's answer."""
        remaining = challenge.attempts_remaining - 1 if challenge else 0
        if challenge is not None:
            result = self._store.record_miss(challenge.challenge_id, now=now)
            raise_for_blocked_miss(result)
            remaining = result.attempts_remaining
        log.info("totp_rejected", factor_id=factor_id, user_id=user_id, outcome=outcome.value)
        if outcome is TotpOutcome.CLOCK_SKEW:
            raise WrongCodeError(
                "That code belongs to another time: the device's clock seems off. "
                "Set it to update automatically, then try a new code.",
                attempts_remaining=remaining,
                reason="clock_skew",
            )
        if outcome is TotpOutcome.REPLAYED:
            raise WrongCodeError(
                "That code was already used; wait for the next one.",
                attempts_remaining=remaining,
                reason="replayed",
            )
        raise WrongCodeError("That code is not correct.", attempts_remaining=remaining)


def raise_for_blocked_miss(result: StoreResult) -> None:
    """After counting a miss: raise for a lock or a closed challenge, return for a plain miss."""
    if result.transition is not Transition.MISMATCH:
        raise_for_blocked(result)
