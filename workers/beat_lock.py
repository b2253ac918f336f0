"""One beat schedules at a time: a lock in Redis with a TTL, renewed at every tick.

As celery-redbeat does it: every `mfa-pipeline beat` ticks, but only the one holding the lock
sends. A standby takes the lock once the holder stops renewing it (killed, host lost, cut off
from Redis), within `MFA_BEAT_LOCK_SECONDS`; the holder renews far more often than that, and a
holder that cannot renew stops sending at once. Every scheduled task is a sweep that is safe
to run twice, so the short overlap a takeover may leave costs nothing.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import redis
import structlog
from celery.beat import PersistentScheduler

from mfa_pipeline.adapters.redis_store import REDIS_DOWN

if TYPE_CHECKING:
    from mfa_pipeline.adapters.redis_store import RedisClient

log = structlog.get_logger(__name__)

# Take the lock, or keep it if it is ours; 1 when held afterwards.
_HOLD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class BeatLock:
    """A lock held by one owner at a time, lost when not renewed for `ttl_seconds`."""

    def __init__(self, client: RedisClient, key: str, *, ttl_seconds: float) -> None:
        self.key = key
        self.ttl_seconds = ttl_seconds
        self.owner = secrets.token_hex(8)
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)
        self._held = False

    def hold(self) -> bool:
        """Take or renew the lock; False when another holds it or Redis cannot be reached."""
        try:
            held = bool(
                self._hold(keys=[self.key], args=[self.owner, int(self.ttl_seconds * 1000)])
            )
        except (*REDIS_DOWN, redis.RedisError):
            held = False
        if held != self._held:
            log.warning("beat_lock_taken" if held else "beat_lock_lost", owner=self.owner)
        self._held = held
        return held

    def release(self) -> None:
        try:
            self._release(keys=[self.key], args=[self.owner])
        except (*REDIS_DOWN, redis.RedisError):
            return  # it runs out by itself


class SingleBeatScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's file-backed scheduler, sending only while it holds the deployment's beat lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from mfa_pipeline.bootstrap import build_redis_client  # noqa: PLC0415 - beat only

        settings = self.app.conf.mfa_settings
        client = build_redis_client(settings, settings.redis_url)
        self.lock = BeatLock(
            client, f"{settings.key_prefix}:beat-lock", ttl_seconds=settings.beat_lock_seconds
        )

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send what is due while holding the lock; a standby only looks at the lock again."""
        check_again = self.lock.ttl_seconds / 3
        if not self.lock.hold():
            return check_again
        return float(min(super().tick(*args, **kwargs), check_again))

    def close(self) -> None:
        super().close()
        self.lock.release()  # a standby takes over at its next look, not after the TTL
