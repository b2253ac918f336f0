"""The account-wide failure budget (`domain/failure_budget.py`) applied to logins.

The count lives in a shared store (`FailureCounter`, Redis): every wrong code writes it. The
lock lives on the user row (SQL, `CodeFactorLock`): it must outlast a Redis restart and show
in `GET /v1/users/{id}` as `locked_until`. Locking starts the count again, so an
administrator's reset (which may run where only the database is reachable, at the CLI) has
only to lift the lock.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.errors import FactorLockedError, RateLimitedError
from mfa_pipeline.domain.failure_budget import COUNTED_FACTORS, LOCKABLE_FACTORS, FailureCount
from mfa_pipeline.services import audit
from mfa_pipeline.services.webauthn import FailureBudgetHook

if TYPE_CHECKING:
    from mfa_pipeline.domain.challenges import FactorType, RequestContext
    from mfa_pipeline.domain.factors import User
    from mfa_pipeline.domain.failure_budget import FailureBudget
    from mfa_pipeline.ports import Clock, FactorRepository, FailureCounter, Metrics
    from mfa_pipeline.services.audit import Auditor

log = structlog.get_logger(__name__)

_MS = 0.001
_NONE = FailureCount(0, 0.0)  # factors the budget does not count: nothing to reset

LOCKED_MESSAGE = (
    "Too many wrong codes: this user's authenticator app and text-message codes are locked. "
    "Sign in with the mobile app, a security key or a backup code, or ask an administrator "
    "to reset MFA."
)


class CodeFactorLock:
    """Locking and lifting the TOTP and SMS factors of a user: durable, audited, counted."""

    def __init__(
        self, *, factors: FactorRepository, auditor: Auditor, clock: Clock, metrics: Metrics
    ) -> None:
        self._factors = factors
        self._auditor = auditor
        self._clock = clock
        self._metrics = metrics

    def lock(
        self, *, user_id: str, seconds: int, failures: int, context: RequestContext | None
    ) -> None:
        now = self._clock.now()
        if not self._factors.lock_code_factors(user_id, now=now, until=now + seconds):
            return  # locked already (a racing failure got there first)
        log.warning("factors_locked", user_id=user_id, failures=failures)
        self._metrics.factor_lock(action="locked")
        self._auditor.record(
            audit.FACTORS_LOCKED,
            user_id=user_id,
            context=context,
            outcome="locked",
            details={"failures": failures, "locked_seconds": seconds},
        )

    def lift(
        self,
        *,
        user_id: str,
        context: RequestContext | None,
        actor_id: str | None = None,
        by: str,
    ) -> bool:
        """Open the code factors again; True (audited, counted) when a lock was in force."""
        if not self._factors.unlock_code_factors(user_id, now=self._clock.now()):
            return False
        log.info("factors_unlocked", user_id=user_id, actor_id=actor_id, outcome=by)
        self._metrics.factor_lock(action="lifted")
        self._auditor.record(
            audit.FACTORS_UNLOCKED,
            user_id=user_id,
            actor_id=actor_id,
            context=context,
            outcome=by,
        )
        return True


class FailureBudgetService(FailureBudgetHook):
    """Counts wrong codes per user, slows them down, locks at the limit, lifts on success."""

    def __init__(
        self,
        *,
        counter: FailureCounter,
        lock: CodeFactorLock,
        budget: FailureBudget,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._counter = counter
        self._lock = lock
        self._budget = budget
        self._clock = clock
        self._metrics = metrics

    def ensure_open(self, user: User, factor: FactorType) -> None:
        """Refuse a TOTP or SMS login while the user's code factors are locked (423)."""
        if factor in LOCKABLE_FACTORS and user.code_factors_locked(self._clock.now()):
            raise FactorLockedError(LOCKED_MESSAGE, locked_until=user.locked_until)

    def ensure_paced(
        self, user_id: str, factor: FactorType, seen: FailureCount | None = None
    ) -> FailureCount:
        """Refuse a code sooner than the slow-down allows (429 with `Retry-After`).

        Checked before the code is: a refused try costs no attempt and reveals nothing.
        `seen`: the count as the caller read it with the login's rate windows (one round trip
        for both); else it is read here. Returns the count, which a success passes back to
        `record_success` (a user with no failures then needs no reset).
        """
        if factor not in COUNTED_FACTORS:
            return _NONE
        count = self._counter.state(user_id) if seen is None else seen
        # Times travel through the store in milliseconds: a rounding is not a wait.
        wait = count.retry_at - self._clock.now() - _MS
        if wait > 0:
            log.warning("rate_limited", limit="failure_budget", outcome="rejected")
            self._metrics.rate_limited(limit="failure_budget")
            raise RateLimitedError(
                "Too many wrong codes in a row; wait before trying another.",
                retry_after=math.ceil(wait),
            )
        return count

    def settled(self, seen: FailureCount, *, locked: bool, within_seconds: float) -> bool:
        """Nothing for a strong login to undo, now or within `within_seconds`.

        No failure counted and no lock: and the slow-down leaves no way to reach the lock in
        that time (from 0 failures it takes over an hour). A passkey login that started
        settled needs no reset and no lift when it succeeds.
        """
        return (
            seen.failures == 0
            and not locked
            and not self._budget.can_lock_within(seen.failures, within_seconds)
        )

    def record_failure(
        self, *, user_id: str, factor: FactorType, context: RequestContext | None
    ) -> None:
        """A well-formed wrong code: count it; at the limit lock TOTP and SMS."""
        if factor not in COUNTED_FACTORS:
            return
        count = self._counter.record_failure(user_id, self._budget, now=self._clock.now())
        if self._budget.locks_at(count.failures):
            self._lock.lock(
                user_id=user_id,
                seconds=self._budget.lock_seconds,
                failures=count.failures,
                context=context,
            )
            self._counter.reset(user_id)

    def record_success(
        self,
        *,
        user_id: str,
        strong: bool,
        context: RequestContext | None = None,
        seen: FailureCount | None = None,
    ) -> None:
        """A login succeeded: the count starts again.

        `strong` for push, WebAuthn and backup codes (not guessable within the budget): they
        also lift a lock of the code factors. `seen`: the count `ensure_paced` read before a
        code was checked; with no failures there is nothing to reset (a code login cannot
        lift a lock).
        """
        if not strong and seen is not None and seen.failures == 0:
            return
        self._counter.reset(user_id)
        if strong:
            self._lock.lift(user_id=user_id, context=context, by="strong_login")

    def lift_after_webauthn_login(self, *, user_id: str, challenge_id: str) -> None:
        """A passkey or security key login: strong, so it lifts a lock."""
        log.debug("failure_budget_restored", user_id=user_id, challenge_id=challenge_id)
        self.record_success(user_id=user_id, strong=True)
