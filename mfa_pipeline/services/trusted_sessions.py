"""Trusted sessions: "keep me logged in for a week" as an opaque token bound to one user."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.audit import AuditEvent

if TYPE_CHECKING:
    from mfa_pipeline.ports import AuditLog, Clock, TrustedSessionRepository

log = structlog.get_logger(__name__)

# 256 random bits (NIST SP 800-63B §7.1 asks session secrets for at least 64; we want 128+).
TOKEN_BYTES = 32
# Anything longer than this cannot be a token of ours; it is refused without a lookup.
MAX_TOKEN_LENGTH = 256


def token_digest(token: str) -> str:
    """What is stored: a SHA-256 of the token. The token has 256 bits, so no salt is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TrustedToken:
    """Shown once, to the login backend, to keep in the browser's cookie."""

    token: str
    expires_at: float


class TrustedSessionService:
    def __init__(
        self,
        *,
        sessions: TrustedSessionRepository,
        audit: AuditLog,
        clock: Clock,
        ttl_seconds: int,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._clock = clock
        self._ttl = ttl_seconds

    def issue(
        self, *, user_id: str, application: str | None, challenge_id: str | None = None
    ) -> TrustedToken:
        now = self._clock.now()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires_at = now + self._ttl
        self._sessions.add(
            token_digest(token),
            user_id=user_id,
            application=application,
            now=now,
            expires_at=expires_at,
        )
        log.info("trusted_session_issued", user_id=user_id, application=application)
        self._audit.record(
            AuditEvent(
                event="trusted_session_issued",
                created_at=now,
                user_id=user_id,
                application=application,
                outcome="ok",
                challenge_id=challenge_id,
                details={"expires_at": expires_at},
            )
        )
        return TrustedToken(token, expires_at)

    def is_trusted(self, *, user_id: str, token: str | None) -> bool:
        """True only for a live token of this very user; every other case is just False."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return False
        return self._sessions.is_valid(token_digest(token), user_id=user_id, now=self._clock.now())

    def revoke_all(
        self,
        *,
        user_id: str,
        reason: str,
        actor_id: str | None = None,
        application: str | None = None,
    ) -> int:
        now = self._clock.now()
        revoked = self._sessions.revoke_all(user_id, now=now)
        log.info("trusted_sessions_revoked", user_id=user_id, count=revoked, outcome=reason)
        self._audit.record(
            AuditEvent(
                event="trusted_sessions_revoked",
                created_at=now,
                user_id=user_id,
                actor_id=actor_id,
                application=application,
                outcome=reason,
                details={"count": revoked},
            )
        )
        return revoked
