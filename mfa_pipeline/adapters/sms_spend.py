"""SMS pumping limits in Redis (its in-memory twin in tests/ passes the same conformance suite).

Sliding logs rather than the fixed windows of `RedisRateLimiter`: toll fraud comes in bursts,
and a fixed window lets twice its limit through when a burst straddles a window boundary. The
counts are small (a few per number, hundreds per country or minute), so a sorted set of send
times per key costs little. Every key of the guard shares one hash tag, so one script checks
and counts all the windows atomically, on Redis Cluster too.
"""

from __future__ import annotations

import hashlib
import hmac
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
