"""The SMS spend guard's in-memory twin (kept honest by test_sms_spend_guard.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mfa_pipeline.domain.sms_spend import (
    BREAKER_WINDOW_SECONDS,
    SmsAdmission,
    SmsBreaker,
    SmsDestination,
    SmsLimitScope,
    SmsSpendLimits,
)
from mfa_pipeline.ports import SmsSpendGuard

# An application name is configuration, not personal data; None (no API key) gets its own.
_NO_APPLICATION = "-"


@dataclass
class _Log:
    """One sliding window: admitted send times by ticket."""

    sends: dict[str, float] = field(default_factory=dict)

    def wait(self, count: int, window: float, now: float) -> float:
        self.sends = {t: at for t, at in self.sends.items() if at > now - window}
        if len(self.sends) < count:
            return 0.0
        return max(0.001, min(self.sends.values()) + window - now)


class InMemorySmsSpendGuard(SmsSpendGuard):
    """The in-memory twin, for unit tests; same rules, one process."""

    def __init__(self, *, limits: SmsSpendLimits) -> None:
        self._limits = limits
        self._logs: dict[str, _Log] = {}
        self._open_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def _windows(self, destination: SmsDestination) -> list[tuple[str, int, float]]:
        lim = self._limits
        return [
            (f"num:{destination.number}", lim.per_number.count, lim.per_number.window_seconds),
            (f"pfx:{destination.prefix}", lim.per_prefix.count, lim.per_prefix.window_seconds),
            (f"cc:{destination.country}", lim.per_country.count, lim.per_country.window_seconds),
        ]

    def _breakers(
        self, destination: SmsDestination, application: str | None
    ) -> list[tuple[str, int, SmsBreaker]]:
        lim = self._limits
        app = application or _NO_APPLICATION
        return [
            (f"brk:{app}|{destination.country}", lim.breaker_scoped_per_minute, SmsBreaker.SCOPED),
            ("all", lim.breaker_per_minute, SmsBreaker.GLOBAL),
        ]

    def admit(
        self,
        destination: SmsDestination,
        *,
        ticket: str,
        now: float,
        application: str | None = None,
    ) -> SmsAdmission:
        with self._lock:
            breakers = self._breakers(destination, application)
            for key, _, breaker in reversed(breakers):
                open_until = self._open_until.get(key, 0.0)
                if now < open_until:
                    return SmsAdmission(
                        allowed=False,
                        scope=SmsLimitScope.CIRCUIT,
                        retry_after=open_until - now,
                        breaker=breaker,
                    )
            windows = self._windows(destination)
            scopes = (SmsLimitScope.NUMBER, SmsLimitScope.PREFIX, SmsLimitScope.COUNTRY)
            for (key, count, seconds), scope in zip(windows, scopes, strict=True):
                wait = self._logs.setdefault(key, _Log()).wait(count, seconds, now)
                if wait > 0:
                    return SmsAdmission(allowed=False, scope=scope, retry_after=wait)
            for key, count, breaker in breakers:
                if self._logs.setdefault(key, _Log()).wait(count, BREAKER_WINDOW_SECONDS, now) > 0:
                    cooldown = self._limits.breaker_cooldown_seconds
                    self._open_until[key] = now + cooldown
                    return SmsAdmission(
                        allowed=False,
                        scope=SmsLimitScope.CIRCUIT,
                        retry_after=cooldown,
                        opened=True,
                        breaker=breaker,
                    )
            for key in self._counted(destination, application):
                self._logs[key].sends[ticket] = now
            return SmsAdmission(allowed=True, ticket=ticket)

    def _counted(self, destination: SmsDestination, application: str | None) -> list[str]:
        return [
            key
            for key, *_ in (*self._windows(destination), *self._breakers(destination, application))
        ]

    def refund(
        self, destination: SmsDestination, *, ticket: str, application: str | None = None
    ) -> None:
        with self._lock:
            for key in self._counted(destination, application):
                log = self._logs.get(key)
                if log is not None:
                    log.sends.pop(ticket, None)
