"""The account-wide failure budget: consecutive wrong codes per user, slowed, then locked.

NIST SP 800-63B rev. 4 §3.2.2 (rev. 3 §5.2.2): a verifier SHALL limit consecutive failed
attempts on one account to no more than 100, and may slow attempts down before that. Wrong
TOTP, SMS and backup codes count together, across every challenge of the user; a success
starts the count again. At the limit the guessable factors (TOTP, SMS: a million codes each)
lock; push, WebAuthn and backup codes (not guessable in 100 tries) keep working and lift it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from mfa_pipeline.domain.challenges import FactorType

# The factors the lock closes: 6-digit codes a password holder could guess.
LOCKABLE_FACTORS = frozenset({FactorType.TOTP, FactorType.SMS})
# What counts against the budget: every factor answered with a code.
COUNTED_FACTORS = frozenset({FactorType.TOTP, FactorType.SMS, FactorType.BACKUP_CODE})


@dataclass(frozen=True, slots=True)
class FailureBudget:
    """How many consecutive failures a user gets, and how they are slowed on the way."""

    limit: int = 100  # NIST SP 800-63B rev. 4 §3.2.2: no more than 100
    free: int = 20  # four locked challenges of typos before any wait
    max_delay_seconds: int = 60
    lock_seconds: int = 30 * 24 * 3600
    # Counts older than this are forgotten (an abandoned account's key leaves Redis).
    memory_seconds: int = 90 * 24 * 3600

    def delay_after(self, failures: int) -> int:
        """Seconds before the next code may be tried, after `failures` consecutive ones.

        Doubling from 1 s after the free ones, capped: 20 → 1 s, 21 → 2 s, ..., 26+ → 60 s.
        """
        if failures < self.free:
            return 0
        return min(self.max_delay_seconds, 1 << min(failures - self.free, 16))

    def locks_at(self, failures: int) -> bool:
        return failures >= self.limit

    def can_lock_within(self, failures: int, seconds: float) -> bool:
        """Whether `seconds` are enough, from `failures`, to reach the lock at all.

        Each failure after the next waits its delay: from 0, 100 failures take at least 4,503 s.
        """
        return _seconds_to_lock(self, failures) <= seconds


@dataclass(frozen=True, slots=True)
class FailureCount:
    """The count after a failure was recorded, and when the next attempt is allowed.

    `retry_at` is a Unix time; one in the past (0 when no wait was ever due) means at once.
    """

    failures: int
    retry_at: float


@functools.cache
def _seconds_to_lock(budget: FailureBudget, failures: int) -> int:
    # Asked on every passkey login, always with a handful of (budget, count) pairs: computed once.
    return sum(budget.delay_after(n) for n in range(failures + 1, budget.limit))
