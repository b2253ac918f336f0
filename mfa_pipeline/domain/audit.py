"""Audit events: who did what to a user's MFA, through which application, with what outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One append-only row. `details` holds ids and counts, never a code, secret or number."""

    event: str
    created_at: float
    user_id: str | None = None
    firm_id: str | None = None
    actor_id: str | None = None
    application: str | None = None
    outcome: str | None = None
    factor: str | None = None
    factor_id: str | None = None
    challenge_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
