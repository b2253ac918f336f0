"""Backup codes: a new set shown once, single-use redemption, and the count that remains."""

from __future__ import annotations

import functools
import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.audit import AuditEvent
from mfa_pipeline.domain.backup_codes import (
    CODES_PER_SET,
    LOW_WATERMARK,
    BurnedBackupCodeError,
    format_backup_code,
    generate_backup_codes,
    lookup_key,
    lookup_tag,
)
from mfa_pipeline.domain.challenges import ChallengeStatus, FactorType
from mfa_pipeline.domain.errors import NotFoundError, RateLimitedError, WrongCodeError
from mfa_pipeline.services.verification import raise_for_blocked, raise_for_blocked_miss

if TYPE_CHECKING:
    from mfa_pipeline.domain.challenges import Challenge, RequestContext
    from mfa_pipeline.domain.limits import RateLimit
    from mfa_pipeline.ports import (
        AuditLog,
        BackupCodeRepository,
        ChallengeStore,
        Clock,
        CodeHasher,
        FactorRepository,
        RateLimiter,
        SecretBox,
    )

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BackupCodeSet:
    """A fresh set, formatted `xxxx-xxxx`. It exists only in this answer: only hashes are kept."""

    codes: list[str]
    generated_at: float


@dataclass(frozen=True, slots=True)
class BackupCodeWarning:
    """Told to the user after a use leaves few codes: time to print a new set."""

    remaining: int
    warning: str | None


class BackupCodeService:
    def __init__(
        self,
        *,
        codes: BackupCodeRepository,
        factors: FactorRepository,
        store: ChallengeStore,
        secrets_box: SecretBox,
        audit: AuditLog,
        clock: Clock,
        hasher: CodeHasher,
        limiter: RateLimiter,
        sets_per_user: RateLimit,
    ) -> None:
        self._codes = codes
        self._limiter = limiter
        self._sets_per_user = sets_per_user
        self._factors = factors
        self._store = store
        self._secrets = secrets_box
        self._audit = audit
        self._clock = clock
        self._hasher = hasher

    def _lookup_keys(self) -> list[bytes]:
        # The first key tags new codes; every key is tried so a key rotation keeps old sets.
        return [lookup_key(k) for k in self._secrets.code_keys()]

    def generate(self, *, user_id: str, application: str | None = None) -> BackupCodeSet:
        """A new set of 10 codes; any earlier set stops working at once."""
        if self._factors.get_user(user_id) is None:
            raise NotFoundError("No such user.")
        now = self._clock.now()
        # Each set costs ten argon2 hashes: a per-user window keeps one account from spending
        # the deployment's CPU (and a refused call changes nothing: the current set stays).
        wait = self._limiter.hit(f"bc:{user_id}", self._sets_per_user, now=now)
        if wait > 0:
            log.warning("rate_limited", user_id=user_id, limit="backup_code_sets_per_user")
            raise RateLimitedError(
                "Too many new sets of backup codes for this user; the current set still works. "
                "Try again later.",
                retry_after=math.ceil(wait),
                limit="backup_code_sets_per_user",
            )
        codes = generate_backup_codes(CODES_PER_SET)
        key = self._lookup_keys()[0]
        stored = [(lookup_tag(key, user_id, c), self._hasher.hash(c)) for c in codes]
        batch_id = secrets.token_hex(8)
        self._codes.replace_codes(user_id, batch_id, stored, now=now)
        log.info("backup_codes_generated", user_id=user_id, batch_id=batch_id, count=len(codes))
        self._audit.record(
            AuditEvent(
                event="backup_codes_generated",
                created_at=now,
                user_id=user_id,
                application=application,
                outcome="ok",
                factor=FactorType.BACKUP_CODE.value,
                details={"count": len(codes), "batch_id": batch_id},
            )
        )
        return BackupCodeSet([format_backup_code(c) for c in codes], now)

    def remaining(self, *, user_id: str) -> int:
        """Unused codes of the user's current set (one COUNT)."""
        return self._codes.remaining(user_id)

    def warning_for(self, *, user_id: str) -> BackupCodeWarning:
        remaining = self._codes.remaining(user_id)
        low = "backup_codes_low" if remaining <= LOW_WATERMARK else None
        return BackupCodeWarning(remaining, low)

    def redeem(
        self,
        *,
        user_id: str,
        code: str,
        challenge_id: str | None = None,
        context: RequestContext | None = None,
    ) -> int:
        """Burn the matching unused code of `user_id`; return how many remain.

        `code` is normalised (`normalize_backup_code`). Exactly one argon2 hash is checked per
        candidate the lookup tag picks (normally one, or none: then a dummy one, so a miss costs
        what a hit does). Raises `BurnedBackupCodeError` for a code already used (also when a
        concurrent login burned it first) and `WrongCodeError` for any other miss; the caller
        counts either as an attempt.
        """
        tags = list(dict.fromkeys(lookup_tag(k, user_id, code) for k in self._lookup_keys()))
        candidates = [c for tag in tags for c in self._codes.unused_candidates(user_id, tag)]
        now = self._clock.now()
        checked = False
        for candidate in candidates:
            checked = True
            if not self._hasher.verify(candidate.code_hash, code):
                continue
            if not self._codes.burn(candidate.code_id, now=now):
                # A concurrent login with the same code burned it first: the conditional
                # update lets exactly one of them through.
                self._refused(user_id, "used", challenge_id, context, now)
                raise BurnedBackupCodeError("That backup code was already used.")
            remaining = self._codes.remaining(user_id)
            self._used(user_id, remaining, challenge_id, context, now)
            return remaining
        used = [c for tag in tags for c in self._codes.used_candidates(user_id, tag)]
        for candidate in used:
            checked = True
            if self._hasher.verify(candidate.code_hash, code):
                self._refused(user_id, "used", challenge_id, context, now)
                raise BurnedBackupCodeError("That backup code was already used.")
        if not checked:
            self._hasher.waste_time(code)
        self._refused(user_id, "mismatch", challenge_id, context, now)
        raise WrongCodeError("That backup code is not correct.", attempts_remaining=0)

    def check_challenge(self, challenge: Challenge, code: str, *, now: float) -> None:
        """Answer a pending backup-code challenge: a miss counts on it, a hit verifies it."""
        try:
            self.redeem(
                user_id=challenge.user_id,
                code=code,
                challenge_id=challenge.challenge_id,
                context=challenge.context,
            )
        except WrongCodeError as exc:
            result = self._store.record_miss(challenge.challenge_id, now=now)
            raise_for_blocked_miss(result)
            exc.attempts_remaining = result.attempts_remaining
            exc.details["attempts_remaining"] = result.attempts_remaining
            raise
        raise_for_blocked(
            self._store.complete(challenge.challenge_id, ChallengeStatus.VERIFIED, now=now)
        )

    def _used(
        self,
        user_id: str,
        remaining: int,
        challenge_id: str | None,
        context: RequestContext | None,
        now: float,
    ) -> None:
        log.info(
            "backup_code_used", user_id=user_id, challenge_id=challenge_id, remaining=remaining
        )
        record = functools.partial(
            self._record,
            user_id=user_id,
            challenge_id=challenge_id,
            context=context,
            now=now,
            remaining=remaining,
        )
        record("backup_code_used", "ok")
        if remaining <= LOW_WATERMARK:
            log.warning("backup_codes_low", user_id=user_id, remaining=remaining)
            record("backup_codes_low", "warning")

    def _refused(
        self,
        user_id: str,
        reason: str,
        challenge_id: str | None,
        context: RequestContext | None,
        now: float,
    ) -> None:
        log.info("backup_code_rejected", user_id=user_id, challenge_id=challenge_id, outcome=reason)
        self._record(
            "backup_code_rejected",
            reason,
            user_id=user_id,
            challenge_id=challenge_id,
            context=context,
            now=now,
            remaining=None,
        )

    def _record(
        self,
        event: str,
        outcome: str,
        *,
        user_id: str,
        challenge_id: str | None,
        context: RequestContext | None,
        now: float,
        remaining: int | None,
    ) -> None:
        self._audit.record(
            AuditEvent(
                event=event,
                created_at=now,
                user_id=user_id,
                application=context.audited_application if context else None,
                outcome=outcome,
                factor=FactorType.BACKUP_CODE.value,
                challenge_id=challenge_id,
                ip=context.ip if context else None,
                user_agent=context.user_agent if context else None,
                details={} if remaining is None else {"remaining": remaining},
            )
        )
