"""SMS pumping limits: the Redis guard and its in-memory twin (one conformance suite for both).

Sliding logs rather than the fixed windows of `RedisRateLimiter`: toll fraud comes in bursts,
and a fixed window lets twice its limit through when a burst straddles a window boundary. The
counts are small (a few per number, hundreds per country or minute), so a sorted set of send
times per key costs little. Every key of the guard shares one hash tag, so one script checks
and counts all the windows atomically, on Redis Cluster too.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mfa_pipeline.adapters.redis_store import _lua, translate_redis_errors
from mfa_pipeline.domain.sms_spend import (
    BREAKER_WINDOW_SECONDS,
    SmsAdmission,
    SmsBreaker,
    SmsDestination,
    SmsLimitScope,
    SmsSpendLimits,
)
from mfa_pipeline.ports import SmsSpendGuard

if TYPE_CHECKING:
    from mfa_pipeline.adapters.redis_store import RedisClient

# The label of the key (derived from the encryption key) that keys the guard's Redis keys.
SMS_SPEND_KEY_LABEL = b"mfa-pipeline sms spend keys"
# An application name is configuration, not personal data; None (no API key) gets its own.
_NO_APPLICATION = "-"

_OUTCOMES: dict[str, tuple[SmsLimitScope, SmsBreaker | None]] = {
    "number": (SmsLimitScope.NUMBER, None),
    "prefix": (SmsLimitScope.PREFIX, None),
    "country": (SmsLimitScope.COUNTRY, None),
    "circuit_scoped": (SmsLimitScope.CIRCUIT, SmsBreaker.SCOPED),
    "circuit_global": (SmsLimitScope.CIRCUIT, SmsBreaker.GLOBAL),
}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class SmsSpendKeys:
    """The guard's keys: one `{sms}` hash tag, so the admission script touches a single slot.

    Numbers, blocks and countries appear only as keyed hashes (HMAC-SHA256, 128 bits kept):
    a copy of Redis (a `dump.rdb`, a `KEYS *`) does not list who receives codes, and without
    the key a guessed number cannot be checked against it.
    """

    def __init__(self, prefix: str, *, hash_key: bytes) -> None:
        self.base = f"{prefix}:{{sms}}"
        self._hash_key = hash_key

    def _hashed(self, kind: str, value: str) -> str:
        digest = hmac.new(self._hash_key, f"{kind}|{value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def windows(self, destination: SmsDestination) -> list[str]:
        """The number, block and country windows (sliding logs)."""
        return [
            f"{self.base}:num:{self._hashed('num', destination.number)}",
            f"{self.base}:pfx:{self._hashed('pfx', destination.prefix)}",
            f"{self.base}:cc:{self._hashed('cc', destination.country)}",
        ]

    def breakers(self, destination: SmsDestination, application: str | None) -> list[str]:
        """Window and open key of this application's breaker to this country, then the global's."""
        app = application or _NO_APPLICATION
        scoped = f"{self.base}:brk:{self._hashed('brk', f'{app}|{destination.country}')}"
        glob = f"{self.base}:all"
        return [scoped, f"{scoped}:open", glob, f"{self.base}:open"]

    def counted(self, destination: SmsDestination, application: str | None) -> list[str]:
        """Every window an admitted send is counted in (what a refund takes it out of)."""
        return [*self.windows(destination), *self.breakers(destination, application)[::2]]


class RedisSmsSpendGuard(SmsSpendGuard):
    """`SmsSpendGuard` on Redis: one Lua script checks every window and counts the send."""

    def __init__(
        self, client: RedisClient, *, prefix: str, limits: SmsSpendLimits, hash_key: bytes
    ) -> None:
        self._redis = client
        self.keys = SmsSpendKeys(prefix, hash_key=hash_key)
        self._limits = limits
        self._admit = client.register_script(_lua("sms_admit"))

    @translate_redis_errors
    def admit(
        self,
        destination: SmsDestination,
        *,
        ticket: str,
        now: float,
        application: str | None = None,
    ) -> SmsAdmission:
        lim = self._limits
        windows = (lim.per_number, lim.per_prefix, lim.per_country)
        args: list[str | int] = [_ms(now), ticket]
        for window in windows:
            args += [window.count, _ms(window.window_seconds)]
        args += [
            lim.breaker_scoped_per_minute,
            lim.breaker_per_minute,
            _ms(BREAKER_WINDOW_SECONDS),
            _ms(lim.breaker_cooldown_seconds),
        ]
        keys = [*self.keys.windows(destination), *self.keys.breakers(destination, application)]
        outcome, wait_ms, opened = self._admit(keys=keys, args=args)
        if outcome == "ok":
            return SmsAdmission(allowed=True, ticket=ticket)
        scope, breaker = _OUTCOMES[str(outcome)]
        return SmsAdmission(
            allowed=False,
            scope=scope,
            retry_after=int(wait_ms) / 1000,
            opened=int(opened) == 1,
            breaker=breaker,
        )

    @translate_redis_errors
    def refund(
        self, destination: SmsDestination, *, ticket: str, application: str | None = None
    ) -> None:
        pipe = self._redis.pipeline(transaction=True)  # one slot: MULTI is allowed on a cluster
        for key in self.keys.counted(destination, application):
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
