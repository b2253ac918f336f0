"""Backup codes, trusted sessions, firm policies and the audit log in SQL."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from mfa_pipeline.adapters.sql_models import (
    AuditEventRow,
    BackupCodeRow,
    FirmPolicyRow,
    TrustedSessionRow,
)
from mfa_pipeline.adapters.sql_repository import translate_db_errors
from mfa_pipeline.domain.audit import AuditEvent
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.policies import FirmPolicy
from mfa_pipeline.ports import (
    AuditLog,
    BackupCodeRepository,
    PolicyRepository,
    StoredBackupCode,
    TrustedSessionRepository,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


class _Sql:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def _session(self) -> Session:
        return self._sessions()

    def _rowcount(self, statement: sa.Executable) -> int:
        with self._session() as session, session.begin():
            return int(getattr(session.execute(statement), "rowcount", 0))


_POLICY = cast("sa.Table", FirmPolicyRow.__table__)
_AUDIT = cast("sa.Table", AuditEventRow.__table__)


class SqlBackupCodeRepository(_Sql, BackupCodeRepository):
    @translate_db_errors
    def replace_codes(
        self, user_id: str, batch_id: str, codes: Sequence[tuple[str, str]], *, now: float
    ) -> None:
        with self._session() as session, session.begin():
            session.execute(sa.delete(BackupCodeRow).where(BackupCodeRow.user_id == user_id))
            session.add_all(
                BackupCodeRow(
                    user_id=user_id,
                    batch_id=batch_id,
                    lookup=lookup,
                    code_hash=code_hash,
                    created_at=now,
                )
                for lookup, code_hash in codes
            )

    @translate_db_errors
    def unused_candidates(self, user_id: str, lookup: str) -> list[StoredBackupCode]:
        return self._candidates(user_id, lookup, BackupCodeRow.used_at.is_(None))

    @translate_db_errors
    def used_candidates(self, user_id: str, lookup: str) -> list[StoredBackupCode]:
        return self._candidates(user_id, lookup, BackupCodeRow.used_at.is_not(None))

    def _candidates(
        self, user_id: str, lookup: str, state: sa.ColumnElement[bool]
    ) -> list[StoredBackupCode]:
        with self._session() as session:
            rows = session.scalars(
                sa.select(BackupCodeRow).where(
                    BackupCodeRow.user_id == user_id, BackupCodeRow.lookup == lookup, state
                )
            )
            return [StoredBackupCode(r.id, r.lookup, r.code_hash) for r in rows]

    @translate_db_errors
    def burn(self, code_id: int, *, now: float) -> bool:
        return (
            self._rowcount(
                sa.update(BackupCodeRow)
                .where(BackupCodeRow.id == code_id, BackupCodeRow.used_at.is_(None))
                .values(used_at=now)
            )
            == 1
        )

    @translate_db_errors
    def remaining(self, user_id: str) -> int:
        with self._session() as session:
            count = session.scalar(
                sa.select(sa.func.count())
                .select_from(BackupCodeRow)
                .where(BackupCodeRow.user_id == user_id, BackupCodeRow.used_at.is_(None))
            )
            return int(count or 0)

    @translate_db_errors
    def delete_all(self, user_id: str) -> int:
        return self._rowcount(sa.delete(BackupCodeRow).where(BackupCodeRow.user_id == user_id))


class SqlTrustedSessionRepository(_Sql, TrustedSessionRepository):
    @translate_db_errors
    def add(
        self,
        token_hash: str,
        *,
        user_id: str,
        application: str | None,
        now: float,
        expires_at: float,
    ) -> None:
        with self._session() as session, session.begin():
            session.add(
                TrustedSessionRow(
                    token_hash=token_hash,
                    user_id=user_id,
                    application=application,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    @translate_db_errors
    def is_valid(self, token_hash: str, *, user_id: str, now: float) -> bool:
        with self._session() as session:
            row = session.get(TrustedSessionRow, token_hash)
            return (
                row is not None
                and row.user_id == user_id
                and row.revoked_at is None
                and row.expires_at > now
            )

    @translate_db_errors
    def revoke_all(self, user_id: str, *, now: float) -> int:
        return self._rowcount(
            sa.update(TrustedSessionRow)
            .where(TrustedSessionRow.user_id == user_id, TrustedSessionRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    @translate_db_errors
    def count_live(self, user_id: str, *, now: float) -> int:
        with self._session() as session:
            count = session.scalar(
                sa.select(sa.func.count())
                .select_from(TrustedSessionRow)
                .where(
                    TrustedSessionRow.user_id == user_id,
                    TrustedSessionRow.revoked_at.is_(None),
                    TrustedSessionRow.expires_at > now,
                )
            )
            return int(count or 0)


class SqlPolicyRepository(_Sql, PolicyRepository):
    @translate_db_errors
    def get(self, firm_id: str) -> FirmPolicy | None:
        # Core: every login of a firm user reads its policy.
        with self._engine.connect() as connection:
            row = connection.execute(_POLICY.select().where(_POLICY.c.firm_id == firm_id)).first()
            if row is None:
                return None
            allowed = frozenset(FactorType(f) for f in row.allowed_factors.split(",") if f)
            return FirmPolicy(
                firm_id=row.firm_id,
                require_mfa=row.require_mfa,
                allowed_factors=allowed,
                updated_at=row.updated_at,
                updated_by=row.updated_by,
            )

    @translate_db_errors
    def put(self, policy: FirmPolicy) -> None:
        with self._session() as session, session.begin():
            session.merge(
                FirmPolicyRow(
                    firm_id=policy.firm_id,
                    require_mfa=policy.require_mfa,
                    allowed_factors=",".join(sorted(f.value for f in policy.allowed_factors)),
                    updated_at=policy.updated_at or 0.0,
                    updated_by=policy.updated_by,
                )
            )


def _audit_row(event: AuditEvent) -> dict[str, object]:
    return {
        "user_id": event.user_id,
        "firm_id": event.firm_id,
        "actor_id": event.actor_id,
        "application": event.application,
        "event": event.event,
        "outcome": event.outcome,
        "factor": event.factor,
        "factor_id": event.factor_id,
        "challenge_id": event.challenge_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": json.dumps(event.details) if event.details else None,
        "created_at": event.created_at,
    }


class SqlAuditLog(_Sql, AuditLog):
    @translate_db_errors
    def record(self, event: AuditEvent) -> None:
        self.record_many([event])

    @translate_db_errors
    def record_many(self, events: Sequence[AuditEvent]) -> None:
        # Core INSERT (executemany): login outcomes are written in batches on the hot path.
        if not events:
            return
        with self._engine.begin() as connection:
            connection.execute(_AUDIT.insert(), [_audit_row(e) for e in events])

    @translate_db_errors
    def for_user(
        self, user_id: str, *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEvent]:
        # Event-time order: a batch of login outcomes gets its ids after rows written directly
        # later (a reset), and must still list before them. `id` breaks ties; the cursor is
        # the last row's (time, id), found by its id.
        row, query = AuditEventRow, sa.select(AuditEventRow).where(AuditEventRow.user_id == user_id)
        if before_id is not None:
            at = (
                sa.select(row.created_at)
                .where(row.id == before_id, row.user_id == user_id)
                .scalar_subquery()
            )
            query = query.where(
                sa.or_(row.created_at < at, sa.and_(row.created_at == at, row.id < before_id))
            )
        with self._session() as session:
            rows = session.scalars(
                query.order_by(row.created_at.desc(), row.id.desc()).limit(limit)
            )
            return [
                AuditEvent(
                    id=r.id,
                    event=r.event,
                    created_at=r.created_at,
                    user_id=r.user_id,
                    firm_id=r.firm_id,
                    actor_id=r.actor_id,
                    application=r.application,
                    outcome=r.outcome,
                    factor=r.factor,
                    factor_id=r.factor_id,
                    challenge_id=r.challenge_id,
                    ip=r.ip,
                    user_agent=r.user_agent,
                    details=json.loads(r.details) if r.details else {},
                )
                for r in rows
            ]
