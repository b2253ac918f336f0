"""In-memory twins of the account repositories, held to the same tests as the SQL ones."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mfa_pipeline.ports import (
    AuditLog,
    BackupCodeRepository,
    PolicyRepository,
    StoredBackupCode,
    TrustedSessionRepository,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mfa_pipeline.domain.audit import AuditEvent
    from mfa_pipeline.domain.policies import FirmPolicy


@dataclass
class _Code:
    user_id: str
    stored: StoredBackupCode
    used_at: float | None = None


class InMemoryBackupCodeRepository(BackupCodeRepository):
    def __init__(self) -> None:
        self._codes: dict[int, _Code] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def replace_codes(
        self,
        user_id: str,
        batch_id: str,  # noqa: ARG002 - batches matter to SQL readers only
        codes: Sequence[tuple[str, str]],
        *,
        now: float,  # noqa: ARG002
    ) -> None:
        with self._lock:
            self._codes = {k: c for k, c in self._codes.items() if c.user_id != user_id}
            for lookup, code_hash in codes:
                code_id = next(self._ids)
                self._codes[code_id] = _Code(user_id, StoredBackupCode(code_id, lookup, code_hash))

    def unused_candidates(self, user_id: str, lookup: str) -> list[StoredBackupCode]:
        with self._lock:
            return [
                c.stored
                for c in self._codes.values()
                if c.user_id == user_id and c.stored.lookup == lookup and c.used_at is None
            ]

    def used_candidates(self, user_id: str, lookup: str) -> list[StoredBackupCode]:
        with self._lock:
            return [
                c.stored
                for c in self._codes.values()
                if c.user_id == user_id and c.stored.lookup == lookup and c.used_at is not None
            ]

    def burn(self, code_id: int, *, now: float) -> bool:
        with self._lock:
            code = self._codes.get(code_id)
            if code is None or code.used_at is not None:
                return False
            code.used_at = now
            return True

    def remaining(self, user_id: str) -> int:
        with self._lock:
            return sum(
                1 for c in self._codes.values() if c.user_id == user_id and c.used_at is None
            )

    def delete_all(self, user_id: str) -> int:
        with self._lock:
            before = len(self._codes)
            self._codes = {k: c for k, c in self._codes.items() if c.user_id != user_id}
            return before - len(self._codes)


@dataclass
class _Session:
    user_id: str
    expires_at: float
    revoked_at: float | None = None


class InMemoryTrustedSessionRepository(TrustedSessionRepository):
    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def add(
        self,
        token_hash: str,
        *,
        user_id: str,
        application: str | None,  # noqa: ARG002
        now: float,  # noqa: ARG002
        expires_at: float,
    ) -> None:
        with self._lock:
            self._sessions[token_hash] = _Session(user_id, expires_at)

    def is_valid(self, token_hash: str, *, user_id: str, now: float) -> bool:
        with self._lock:
            s = self._sessions.get(token_hash)
            return (
                s is not None
                and s.user_id == user_id
                and s.revoked_at is None
                and s.expires_at > now
            )

    def revoke_all(self, user_id: str, *, now: float) -> int:
        with self._lock:
            live = [
                s for s in self._sessions.values() if s.user_id == user_id and s.revoked_at is None
            ]
            for s in live:
                s.revoked_at = now
            return len(live)

    def count_live(self, user_id: str, *, now: float) -> int:
        with self._lock:
            return sum(
                1
                for s in self._sessions.values()
                if s.user_id == user_id and s.revoked_at is None and s.expires_at > now
            )


class InMemoryPolicyRepository(PolicyRepository):
    def __init__(self) -> None:
        self._policies: dict[str, FirmPolicy] = {}
        self._lock = threading.Lock()

    def get(self, firm_id: str) -> FirmPolicy | None:
        with self._lock:
            return self._policies.get(firm_id)

    def put(self, policy: FirmPolicy) -> None:
        with self._lock:
            self._policies[policy.firm_id] = policy


class InMemoryAuditLog(AuditLog):
    def __init__(self) -> None:
        self._events: list[AuditEvent] = []
        self._lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        with self._lock:
            self._events.append(replace(event, id=len(self._events) + 1))

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        for event in events:
            self.record(event)

    def for_user(
        self, user_id: str, *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEvent]:
        with self._lock:
            mine = sorted(
                (e for e in self._events if e.user_id == user_id),
                key=lambda e: (e.created_at, e.id or 0),
                reverse=True,
            )
            if before_id is not None:
                cursor = next((e for e in mine if e.id == before_id), None)
                mine = (
                    [e for e in mine if (e.created_at, e.id or 0) < (cursor.created_at, before_id)]
                    if cursor is not None
                    else [e for e in mine if (e.id or 0) < before_id]
                )
            return mine[:limit]
