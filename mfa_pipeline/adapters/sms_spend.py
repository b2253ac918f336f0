"""SMS pumping limits: the Redis guard and its in-memory twin (one conformance suite for both).

Sliding logs rather than the fixed windows of `RedisRateLimiter`: toll fraud comes in bursts,
and a fixed window lets twice its limit through when a burst straddles a window boundary. The
counts are small (a few per number, hundreds per country or minute), so a sorted set of send
times per key costs little. Every key of the guard shares one hash tag, so one script checks
and counts all the windows atomically, on Redis Cluster too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mfa_pipeline.adapters.redis_store import _lua, translate_redis_errors
from mfa_pipeline.domain.sms_spend import (
    BREAKER_WINDOW_SECONDS,
    SmsAdmission,
    SmsDestination,
    SmsLimitScope,
    SmsSpendLimits,
)
from mfa_pipeline.ports import SmsSpendGuard

if TYPE_CHECKING:
    from mfa_pipeline.adapters.redis_store import RedisClient

_SCOPES = {
    "number": SmsLimitScope.NUMBER,
    "prefix": SmsLimitScope.PREFIX,
    "country": SmsLimitScope.COUNTRY,
    "circuit": SmsLimitScope.CIRCUIT,
}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class SmsSpendKeys:
    """The guard's keys: one `{sms}` hash tag, so the admission script touches a single slot."""

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}:{{sms}}"

    def windows(self, destination: SmsDestination) -> list[str]:
        return [
            f"{self.base}:num:{destination.number}",
            f"{self.base}:pfx:{destination.prefix}",
            f"{self.base}:cc:{destination.country}",
            f"{self.base}:all",
        ]

    @property
    def breaker(self) -> str:
        return f"{self.base}:open"


class RedisSmsSpendGuard(SmsSpendGuard):
    """`SmsSpendGuard` on Redis: one Lua script checks every window and counts the send."""

    def __init__(self, client: RedisClient, *, prefix: str, limits: SmsSpendLimits) -> None:
        self._redis = client
        self.keys = SmsSpendKeys(prefix)
        self._limits = limits
        self._admit = client.register_script(_lua("sms_admit"))

    @translate_redis_errors
    def admit(self, destination: SmsDestination, *, ticket: str, now: float) -> SmsAdmission:
        lim = self._limits
        windows = (lim.per_number, lim.per_prefix, lim.per_country)
        args: list[str | int] = [_ms(now), ticket]
        for window in windows:
            args += [window.count, _ms(window.window_seconds)]
        args += [
            lim.breaker_per_minute,
            _ms(BREAKER_WINDOW_SECONDS),
            _ms(lim.breaker_cooldown_seconds),
        ]
        outcome, wait_ms, opened = self._admit(
            keys=[*self.keys.windows(destination), self.keys.breaker], args=args
        )
        if outcome == "ok":
            return SmsAdmission(allowed=True, ticket=ticket)
        return SmsAdmission(
            allowed=False,
            scope=_SCOPES[str(outcome)],
            retry_after=int(wait_ms) / 1000,
            opened=int(opened) == 1,
        )

    @translate_redis_errors
    def refund(self, destination: SmsDestination, *, ticket: str) -> None:
        pipe = self._redis.pipeline(transaction=True)  # one slot: MULTI is allowed on a cluster
        for key in self.keys.windows(destination):
            pipe.zrem(key, ticket)
        pipe.execute()


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
        self._open_until = 0.0
        self._lock = threading.Lock()

    def _windows(self, destination: SmsDestination) -> list[tuple[str, int, float]]:
        lim = self._limits
        return [
            (f"num:{destination.number}", lim.per_number.count, lim.per_number.window_seconds),
            (f"pfx:{destination.prefix}", lim.per_prefix.count, lim.per_prefix.window_seconds),
            (f"cc:{destination.country}", lim.per_country.count, lim.per_country.window_seconds),
            ("all", lim.breaker_per_minute, BREAKER_WINDOW_SECONDS),
        ]

    def admit(self, destination: SmsDestination, *, ticket: str, now: float) -> SmsAdmission:
        with self._lock:
            if now < self._open_until:
                return SmsAdmission(
                    allowed=False, scope=SmsLimitScope.CIRCUIT, retry_after=self._open_until - now
                )
            windows = self._windows(destination)
            scopes = (SmsLimitScope.NUMBER, SmsLimitScope.PREFIX, SmsLimitScope.COUNTRY)
            for (key, count, seconds), scope in zip(windows, scopes, strict=False):
                wait = self._logs.setdefault(key, _Log()).wait(count, seconds, now)
                if wait > 0:
                    return SmsAdmission(allowed=False, scope=scope, retry_after=wait)
            key, count, seconds = windows[3]
            if self._logs.setdefault(key, _Log()).wait(count, seconds, now) > 0:
                cooldown = self._limits.breaker_cooldown_seconds
                self._open_until = now + cooldown
                return SmsAdmission(
                    allowed=False, scope=SmsLimitScope.CIRCUIT, retry_after=cooldown, opened=True
                )
            for key, _, _ in windows:
                self._logs[key].sends[ticket] = now
            return SmsAdmission(allowed=True, ticket=ticket)

    def refund(self, destination: SmsDestination, *, ticket: str) -> None:
        with self._lock:
            for key, _, _ in self._windows(destination):
                log = self._logs.get(key)
                if log is not None:
                    log.sends.pop(ticket, None)
