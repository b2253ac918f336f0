"""Invitations to enable MFA in SQL: one row per invited user, deleted when it ends."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import sqlalchemy as sa

from mfa_pipeline.adapters.sql_models import FactorRow, MfaInvitationRow, UserRow
from mfa_pipeline.adapters.sql_repository import translate_db_errors
from mfa_pipeline.domain.factors import FactorStatus
from mfa_pipeline.domain.invitations import Candidate, Invitation
from mfa_pipeline.ports import InvitationRepository

if TYPE_CHECKING:
    from collections.abc import Sequence

_INVITATIONS = cast("sa.Table", MfaInvitationRow.__table__)
_USERS = cast("sa.Table", UserRow.__table__)
_FACTORS = cast("sa.Table", FactorRow.__table__)


def _invitation(row: sa.Row[object]) -> Invitation:
    return Invitation(
        invitation_id=row.invitation_id,
        user_id=row.user_id,
        firm_id=row.firm_id,
        invited_by=row.invited_by,
        invited_at=row.invited_at,
    )


def _active_factor_of(user_id: sa.ColumnElement[str]) -> sa.Exists:
    return (
        sa.select(_FACTORS.c.factor_id)
        .where(_FACTORS.c.user_id == user_id, _FACTORS.c.status == FactorStatus.ACTIVE.value)
        .exists()
    )


class SqlInvitationRepository(InvitationRepository):
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    @translate_db_errors
    def candidates(self, user_ids: Sequence[str]) -> dict[str, Candidate]:
        query = sa.select(
            _USERS.c.user_id,
            _USERS.c.firm_id,
            _active_factor_of(_USERS.c.user_id).label("enrolled"),
        ).where(_USERS.c.user_id.in_(list(user_ids)))
        with self._engine.connect() as connection:
            return {
                row.user_id: Candidate(
                    user_id=row.user_id, firm_id=row.firm_id, enrolled=bool(row.enrolled)
                )
                for row in connection.execute(query)
            }

    @translate_db_errors
    def open_among(self, user_ids: Sequence[str]) -> dict[str, Invitation]:
        query = _INVITATIONS.select().where(
            _INVITATIONS.c.user_id.in_(list(user_ids)),
            ~_active_factor_of(_INVITATIONS.c.user_id),
        )
        with self._engine.connect() as connection:
            return {row.user_id: _invitation(row) for row in connection.execute(query)}

    @translate_db_errors
    def add_all(self, invitations: Sequence[Invitation]) -> None:
        if not invitations:
            return
        with self._engine.begin() as connection:
            # Rows left by an invitation that ended are replaced, all in one transaction.
            connection.execute(
                _INVITATIONS.delete().where(
                    _INVITATIONS.c.user_id.in_([i.user_id for i in invitations])
                )
            )
            connection.execute(
                _INVITATIONS.insert(),
                [
                    {
                        "user_id": i.user_id,
                        "invitation_id": i.invitation_id,
                        "firm_id": i.firm_id,
                        "invited_by": i.invited_by,
                        "invited_at": i.invited_at,
                    }
                    for i in invitations
                ],
            )

    @translate_db_errors
    def open_for(self, user_id: str) -> Invitation | None:
        found = self.open_among([user_id])
        return found.get(user_id)

    @translate_db_errors
    def withdraw(self, firm_id: str, user_id: str) -> Invitation | None:
        where = (_INVITATIONS.c.user_id == user_id, _INVITATIONS.c.firm_id == firm_id)
        with self._engine.begin() as connection:
            row = connection.execute(_INVITATIONS.select().where(*where)).first()
            if row is None:
                return None
            deleted = connection.execute(_INVITATIONS.delete().where(*where))
            # Two withdrawals at once: only the one that deleted the row reports it.
            return _invitation(row) if int(getattr(deleted, "rowcount", 0)) == 1 else None
