"""Recording and reading the audit trail: who did what to a user's MFA, from which application.

Rows are append-only (`AuditLog`). They hold ids, counts and outcomes: never a code, a secret,
a token or a phone number. `details` keys that sound like one are dropped before writing, so a
careless caller cannot leak one into the trail.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import structlog

from mfa_pipeline.domain.audit import AuditEvent
from mfa_pipeline.domain.errors import UnavailableError

if TYPE_CHECKING:
    from mfa_pipeline.domain.challenges import RequestContext
    from mfa_pipeline.ports import AuditLog, Clock

log = structlog.get_logger(__name__)

# Event names (past tense, constant): the values the `event` column holds.
FACTOR_ENROLLED = "factor_enrolled"
FACTOR_ACTIVATED = "factor_activated"
FACTOR_REMOVED = "factor_removed"
CHALLENGE_VERIFIED = "challenge_verified"
CHALLENGE_FAILED = "challenge_failed"  # a wrong code: one attempt used
CHALLENGE_LOCKED = "challenge_locked"
CHALLENGE_EXPIRED = "challenge_expired"
DELIVERY_FAILED = "delivery_failed"
MFA_RESET = "mfa_reset"
POLICY_CHANGED = "policy_changed"
USER_FIRM_CHANGED = "user_firm_changed"
USER_ROLE_CHANGED = "user_role_changed"
FACTORS_LOCKED = "factors_locked"  # the failure budget is spent: TOTP and SMS closed
FACTORS_UNLOCKED = "factors_unlocked"

MAX_PAGE = 200
_FORBIDDEN_DETAIL_WORDS = ("code", "secret", "token", "phone", "number", "password", "key")


def _safe_details(details: dict[str, Any] | None) -> dict[str, Any]:
    if not details:
        return {}
    safe: dict[str, Any] = {}
    for key, value in details.items():
        lowered = key.lower()
        if any(word in lowered for word in _FORBIDDEN_DETAIL_WORDS) and not lowered.endswith(
            ("_count", "_id", "_ids", "error_code")
        ):
            log.warning("audit_detail_dropped", detail=key)
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            safe[key] = value
        elif isinstance(value, (list, tuple)):
            safe[key] = [str(v) for v in value]
    return safe


class AuditBatcher:
    """Group commit of best-effort rows: one INSERT per batch instead of one per login.

    A row waits at most `seconds` (a reader of the trail in this process flushes first, and so
    does a clean exit). What a crash can lose is that much of login outcomes, which are
    best-effort already; enrollment, reset and policy rows never wait here. The flushing
    thread starts on first use, so a process forked after building this gets its own.
    """

    def __init__(self, log: AuditLog, *, seconds: float, max_pending: int = 10_000) -> None:
        self._log = log
        self._seconds = seconds
        self._max_pending = max_pending
        self._pending: list[AuditEvent] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._owner = 0  # pid whose thread flushes
        self._closed = False
        atexit.register(self.close)

    def add(self, row: AuditEvent) -> None:
        with self._lock:
            if self._owner != os.getpid():
                self._owner = os.getpid()
                self._pending = []
                threading.Thread(target=self._run, name="audit-batcher", daemon=True).start()
            self._pending.append(row)
            full = len(self._pending) >= self._max_pending
        if full:
            self.flush()  # a stalled database must not grow the backlog without bound
        else:
            self._wake.set()

    def flush(self) -> None:
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._log.record_many(batch)
            except UnavailableError:
                log.warning("audit_write_failed", rows=len(batch))

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            self._flush_after_pause()

    def _flush_after_pause(self) -> None:
        time.sleep(self._seconds)
        try:
            self.flush()
        except Exception:
            log.exception("audit_batch_failed")


class Auditor:
    """Writes audit rows with the request's application, IP and user agent, and reads them."""

    def __init__(self, *, log: AuditLog, clock: Clock, batch_seconds: float = 0.0) -> None:
        self._log = log
        self._clock = clock
        self._batcher = AuditBatcher(log, seconds=batch_seconds) if batch_seconds > 0 else None

    def record(
        self,
        event: str,
        *,
        user_id: str | None,
        outcome: str,
        context: RequestContext | None = None,
        application: str | None = None,
        actor_id: str | None = None,
        firm_id: str | None = None,
        factor: str | None = None,
        factor_id: str | None = None,
        challenge_id: str | None = None,
        details: dict[str, Any] | None = None,
        best_effort: bool = False,
    ) -> None:
        """Append one row. `best_effort` rows (login outcomes) never fail the caller's answer.

        A login whose code was accepted must not turn into a 503 because the trail's database
        blinked; the miss is logged instead. Administrative changes write strictly.
        """
        row = AuditEvent(
            event=event,
            created_at=self._clock.now(),
            user_id=user_id,
            firm_id=firm_id,
            actor_id=actor_id,
            application=application or (context.audited_application if context else None),
            outcome=outcome,
            factor=factor,
            factor_id=factor_id,
            challenge_id=challenge_id,
            ip=context.ip if context else None,
            user_agent=context.user_agent if context else None,
            details=_safe_details(details),
        )
        if best_effort and self._batcher is not None:
            self._batcher.add(row)
            return
        try:
            self._log.record(row)
        except UnavailableError:
            if not best_effort:
                raise
            log.warning("audit_write_failed", audit_event=event, user_id=user_id)

    def for_user(
        self, *, user_id: str, limit: int = 50, before: int | None = None
    ) -> list[AuditEvent]:
        """Newest first; `before` is the `id` of the last row of the previous page."""
        self.flush()
        return self._log.for_user(user_id, limit=max(1, min(limit, MAX_PAGE)), before_id=before)

    def flush(self) -> None:
        """Write the rows still waiting in the batch (before a read, and at shutdown)."""
        if self._batcher is not None:
            self._batcher.flush()
