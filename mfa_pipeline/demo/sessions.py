"""Server-side browser sessions: a random id in an HttpOnly cookie, the state in memory.

Nothing about the login (who passed the password, which challenge is pending) travels in the
cookie, so the browser cannot alter it, and no signing key is needed. A demo runs in one
process, so memory is enough; a real app would keep these in its own store.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

SESSION_COOKIE = "demo_session"
SESSION_SECONDS = 8 * 3600
REAUTH_SECONDS = 300  # a re-entered password unlocks security settings for five minutes


@dataclass
class Session:
    sid: str
    csrf: str
    created: float
    # The first factor passed, the second step not yet: whose login this is.
    pending_user: str | None = None
    second_step: dict[str, Any] = field(default_factory=dict)
    user: str | None = None  # signed in
    must_enroll: bool = False
    # An administrator's invitation to set up MFA, seen at sign-in; "Later" hides it until
    # the user signs out (the session ends with the sign-out).
    invited_by: str | None = None
    invitation_later: bool = False
    reauth_until: float = 0.0
    setup: dict[str, Any] = field(default_factory=dict)  # an enrollment in progress
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def flash(self, message: str, kind: str = "status") -> None:
        self.flashes.append((kind, message))

    def pop_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out

    def sign_in(self, username: str) -> None:
        self.pending_user = None
        self.second_step = {}
        self.user = username

    @property
    def recently_reauthenticated(self) -> bool:
        return time.time() < self.reauth_until


class SessionStore:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def get(self, sid: str | None) -> Session | None:
        session = self._sessions.get(sid or "")
        if session is None or time.time() - session.created > SESSION_SECONDS:
            return None
        return session

    def new(self) -> Session:
        self._expire()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(24), time.time())
        self._sessions[session.sid] = session
        return session

    def renew(self, session: Session) -> None:
        """Give the session a new id; the old one stops working."""
        self._sessions.pop(session.sid, None)
        session.sid = secrets.token_urlsafe(32)
        self._sessions[session.sid] = session

    def drop(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def _expire(self) -> None:
        now = time.time()
        for sid in [s for s, v in self._sessions.items() if now - v.created > SESSION_SECONDS]:
            del self._sessions[sid]
