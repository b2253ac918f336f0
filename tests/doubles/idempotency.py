"""The idempotency store's in-memory twin: reservations and answers in a dict, no expiry clock.

`created` reads the markers the in-memory challenge store writes with a challenge, as the
Redis store reads the ones `create.lua` writes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mfa_pipeline.ports import IdempotencyRecord, IdempotencyStore

if TYPE_CHECKING:
    from tests.doubles.memory_store import InMemoryChallengeStore


class InMemoryIdempotencyStore(IdempotencyStore):
    def __init__(self, store: InMemoryChallengeStore) -> None:
        self._store = store
        self._records: dict[str, IdempotencyRecord] = {}
        self._lock = threading.Lock()

    def begin(
        self,
        digest: str,
        fingerprint: str,
        *,
        lease_seconds: int,  # noqa: ARG002 - nothing expires in memory
    ) -> IdempotencyRecord | None:
        with self._lock:
            held = self._records.get(digest)
            if held is None:
                self._records[digest] = IdempotencyRecord(fingerprint, None)
            return held

    def finish(
        self,
        digest: str,
        fingerprint: str,
        response: str,
        *,
        ttl_seconds: int,  # noqa: ARG002 - nothing expires in memory
    ) -> None:
        with self._lock:
            self._records[digest] = IdempotencyRecord(fingerprint, response)

    def release(self, digest: str, fingerprint: str) -> None:
        with self._lock:
            held = self._records.get(digest)
            if held is not None and held.fingerprint == fingerprint and held.response is None:
                del self._records[digest]

    def created(self, digest: str, *, user_id: str) -> str | None:
        return self._store.idempotency_markers.get((user_id, digest))
