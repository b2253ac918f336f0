"""Long-poll wake-ups: one Redis pattern subscription per API process, futures per waiter.

The store's scripts publish on a challenge's channel whenever its status changes. Each API process
holds one `PSUBSCRIBE <prefix>:ev:*` for its whole life and wakes the futures of the channel a
message names: a waiting request holds no thread and costs no Redis command of its own. (A
SUBSCRIBE per waiter, tried first, queued every subscription behind the reader's pending read
on the shared connection: seconds of delay at a hundred waits a second.) The price is that
every process sees every change, a few dozen bytes each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from mfa_pipeline.ports import NullMetrics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mfa_pipeline.ports import Metrics

log = structlog.get_logger(__name__)


class ChallengeWatcher:
    def __init__(
        self, redis_url: str, *, channel_prefix: str, metrics: Metrics | None = None
    ) -> None:
        self._url = redis_url
        self._metrics = metrics or NullMetrics()  # `mfa_long_poll_waiters`, summed per deployment
        self._prefix = channel_prefix
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._redis: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._active = asyncio.Event()  # set while the pattern subscription stands

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    async def start(self) -> None:
        self._redis = aioredis.from_url(self._url, socket_connect_timeout=2)
        self._reader = asyncio.create_task(self._read_forever(), name="challenge-watcher")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._redis is not None:
            await self._redis.aclose()

    @contextlib.asynccontextmanager
    async def watch(self, challenge_id: str) -> AsyncIterator[asyncio.Future[None]]:
        """Listen first, then let the caller re-read the state: no change can slip between."""
        channel = self._prefix + challenge_id
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[channel].add(future)
        self._metrics.long_poll_waiters(1)
        try:
            await self._listening()
            yield future
        finally:
            self._metrics.long_poll_waiters(-1)
            waiters = self._waiters.get(channel)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[channel]

    async def _listening(self) -> None:
        """The pattern subscription is in place (made on first use, and after a reconnect)."""
        if self._active.is_set():
            return
        async with self._lock:
            if self._active.is_set():
                return
            assert self._redis is not None  # noqa: S101 - start() runs first
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            await pubsub.psubscribe(self._prefix + "*")
            self._pubsub = pubsub
            self._active.set()

    def _wake(self, channel: str) -> None:
        for future in self._waiters.get(channel, ()):
            if not future.done():
                future.set_result(None)

    def _wake_all(self) -> None:
        for channel in list(self._waiters):
            self._wake(channel)

    async def _read_forever(self) -> None:
        while True:
            pubsub = self._pubsub
            if pubsub is None or not self._active.is_set():
                await self._active.wait()
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                await self._recover(exc)
                continue
            if message is not None and message.get("type") == "pmessage":
                channel = message["channel"]
                self._wake(channel.decode() if isinstance(channel, bytes) else channel)

    async def _recover(self, exc: Exception) -> None:
        """Reconnect after Redis went away; waiters re-read state, so none waits on a lost event."""
        log.warning("watcher_reconnecting", error=type(exc).__name__)
        self._wake_all()
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
            self._active.clear()
        await asyncio.sleep(0.5)
