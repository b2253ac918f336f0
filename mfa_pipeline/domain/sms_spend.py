"""SMS pumping (toll fraud) and SMS bombing limits, as plain values.

An attacker who can make us text numbers of their choosing earns a share of what premium-range
numbers cost us, or floods one victim's phone. The limits count SMS per destination number,
per number prefix (a block of consecutive numbers, the shape premium ranges are leased in) and
per country, over sliding windows. Circuit breakers cap the SMS per minute of one application
to one destination country, with a deployment-wide breaker (a higher cap) as the last resort:
a surge pauses what it came through, not every SMS of every application.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mfa_pipeline.domain.errors import MfaError
from mfa_pipeline.domain.limits import RateLimit

# The breakers' window: their settings read "SMS per minute".
BREAKER_WINDOW_SECONDS = 60


class SmsLimitScope(StrEnum):
    """Which limit refused an SMS (told to the login backend; it names no number)."""

    NUMBER = "sms_number"
    PREFIX = "sms_prefix"
    COUNTRY = "sms_country"
    CIRCUIT = "sms_circuit"


class SmsBreaker(StrEnum):
    """Which circuit breaker is open: one application's to one country, or the global one."""

    SCOPED = "application_country"
    GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class SmsSpendLimits:
    """The defaults are the settings' defaults (`MFA_SMS_LIMIT_*`, `MFA_SMS_BREAKER_*`)."""

    per_number: RateLimit = field(default_factory=lambda: RateLimit(10, 3600))
    per_prefix: RateLimit = field(default_factory=lambda: RateLimit(30, 3600))
    per_country: RateLimit = field(default_factory=lambda: RateLimit(1000, 3600))
    # Deployment-wide SMS per minute before the global breaker opens; SMS per minute of one
    # application to one country before that pair's breaker opens; how long either stays open.
    breaker_per_minute: int = 300
    breaker_scoped_per_minute: int = 100
    breaker_cooldown_seconds: int = 300


@dataclass(frozen=True, slots=True)
class SmsDestination:
    """Where an SMS would go, as the limits see it: the E.164 number, its block, its country."""

    number: str
    prefix: str
    country: str
    # Satellite and other networks without a country (+881, +882, ...): toll-fraud favourites.
    non_geographic: bool = False


@dataclass(frozen=True, slots=True)
class SmsAdmission:
    """The answer to "may we send one more SMS there now?".

    `ticket` names the counted send so that it can be handed back (`refund`) when the request
    fails afterwards for another reason; `opened` is true only for the one call that opened the
    breaker, so the alert is logged once per opening across every process.
    """

    allowed: bool
    ticket: str = ""
    scope: SmsLimitScope | None = None
    retry_after: float = 0.0
    opened: bool = False
    breaker: SmsBreaker | None = None  # with scope CIRCUIT: which breaker


class SmsUnavailableError(MfaError):
    """SMS are paused by an open circuit breaker (503, Retry-After; `breaker` says which)."""

    code = "sms_unavailable"

    def __init__(self, message: str, *, retry_after: int, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = max(1, retry_after)
