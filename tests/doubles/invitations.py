"""The invitation repository's in-memory twin, reading the users and factors of its twin."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mfa_pipeline.domain.invitations import Candidate, Invitation
from mfa_pipeline.ports import InvitationRepository

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tests.doubles.memory_factors import InMemoryFactorRepository


class InMemoryInvitationRepository(InvitationRepository):
    """Enrolling ends an invitation here only while the factor is active (SQL: for good)."""

    def __init__(self, factors: InMemoryFactorRepository) -> None:
        self._factors = factors
        self._rows: dict[str, Invitation] = {}
        self._lock = threading.Lock()

    def _enrolled(self, user_id: str) -> bool:
        return any(f.is_active for f in self._factors.list_factors(user_id))

    def candidates(self, user_ids: Sequence[str]) -> dict[str, Candidate]:
        found = {}
        for user_id in user_ids:
            user = self._factors.get_user(user_id)
            if user is not None:
                found[user_id] = Candidate(user_id, user.firm_id, self._enrolled(user_id))
        return found

    def open_among(self, user_ids: Sequence[str]) -> dict[str, Invitation]:
        with self._lock:
            rows = {u: self._rows[u] for u in user_ids if u in self._rows}
        return {u: i for u, i in rows.items() if not self._enrolled(u)}

    def add_all(self, invitations: Sequence[Invitation]) -> None:
        if any(self._factors.get_user(i.user_id) is None for i in invitations):
            raise KeyError("no such user")  # the SQL foreign key: all or nothing
        with self._lock:
            self._rows.update({i.user_id: i for i in invitations})

    def open_for(self, user_id: str) -> Invitation | None:
        return self.open_among([user_id]).get(user_id)

    def withdraw(self, firm_id: str, user_id: str) -> Invitation | None:
        with self._lock:
            row = self._rows.get(user_id)
            if row is None or row.firm_id != firm_id:
                return None
            return self._rows.pop(user_id)
