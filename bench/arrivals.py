"""What a fake provider received, as futures an asyncio client can await, keyed as it likes.

The fakes run in threads of the bench process and append to a list; a watcher thread follows
the list and resolves, on the event loop, the future of each message's key (the SMS's number,
the push's challenge id), counting arrivals per key so duplicates show.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable


class Arrivals:
    def __init__(
        self,
        messages: list[dict[str, Any]],
        key: Callable[[dict[str, Any]], str],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._messages, self._key, self._loop = messages, key, loop
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.count: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def wait(self, key: str) -> asyncio.Future[dict[str, Any]]:
        """The first message for `key`; ask before it may arrive, or after: both work."""
        return self._waiters.setdefault(key, self._loop.create_future())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _watch(self) -> None:
        cursor = 0
        while not self._stop.is_set():
            new = self._messages[cursor:]
            cursor += len(new)
            for message in new:
                self._loop.call_soon_threadsafe(self._arrived, message)
            time.sleep(0.001)

    def _arrived(self, message: dict[str, Any]) -> None:
        key = self._key(message)
        self.count[key] += 1
        waiter = self.wait(key)
        if not waiter.done():
            waiter.set_result(message)
