"""Passkeys and security keys in SQL: the factor row and its credential, written together."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from mfa_pipeline.adapters.sql_models import FactorRow, WebAuthnCredentialRow, end_invitation
from mfa_pipeline.adapters.sql_repository import (
    SingleStatements,
    credential_from_row,
    translate_db_errors,
)
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.errors import FactorExistsError
from mfa_pipeline.domain.factors import FactorStatus
from mfa_pipeline.ports import WebAuthnCredentialRepository

if TYPE_CHECKING:
    from mfa_pipeline.domain.factors import Factor
    from mfa_pipeline.domain.webauthn import WebAuthnCredential

_CREDENTIALS = cast("sa.Table", WebAuthnCredentialRow.__table__)
_FACTORS = cast("sa.Table", FactorRow.__table__)

# Credentials of active factors, with the factor's name and creation time.
_SELECT = (
    sa.select(
        *_CREDENTIALS.c,
        _FACTORS.c.label,
        _FACTORS.c.created_at,
    )
    .select_from(_CREDENTIALS.join(_FACTORS, _FACTORS.c.factor_id == _CREDENTIALS.c.factor_id))
    .where(_FACTORS.c.status == FactorStatus.ACTIVE.value)
)

# Every passkey login runs it: built once, so each run skips building and keying the statement.
_RECORD_USE = (
    sa.update(_CREDENTIALS)
    .where(
        _CREDENTIALS.c.factor_id == sa.bindparam("b_factor_id"),
        _CREDENTIALS.c.sign_count == sa.bindparam("b_previous"),
    )
    .values(
        sign_count=sa.bindparam("b_sign_count"),
        backed_up=sa.bindparam("b_backed_up"),
        last_used_at=sa.bindparam("b_now"),
    )
)


class SqlWebAuthnCredentialRepository(WebAuthnCredentialRepository):
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        # The login's read and counter update are single statements (`SingleStatements`).
        self._single = SingleStatements(engine)

    @translate_db_errors
    def add(self, factor: Factor, credential: WebAuthnCredential) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    sa.insert(_FACTORS).values(
                        factor_id=factor.factor_id,
                        user_id=factor.user_id,
                        type=FactorType.WEBAUTHN.value,
                        status=factor.status.value,
                        label=credential.name,
                        created_at=factor.created_at,
                        activated_at=factor.activated_at,
                    )
                )
                connection.execute(
                    sa.insert(_CREDENTIALS).values(
                        factor_id=credential.factor_id,
                        user_id=credential.user_id,
                        credential_id=credential.credential_id,
                        public_key=credential.public_key,
                        sign_count=credential.sign_count,
                        transports=",".join(credential.transports),
                        aaguid=credential.aaguid,
                        backup_eligible=credential.backup_eligible,
                        backed_up=credential.backed_up,
                        last_used_at=None,
                    )
                )
                connection.execute(end_invitation(factor.user_id))
        except IntegrityError as exc:
            raise FactorExistsError("That passkey or security key is already registered.") from exc

    @translate_db_errors
    def for_user(self, user_id: str) -> list[WebAuthnCredential]:
        with self._single.read() as connection:
            rows = connection.execute(
                _SELECT.where(_CREDENTIALS.c.user_id == user_id).order_by(
                    _FACTORS.c.created_at, _FACTORS.c.factor_id
                )
            )
            return [credential_from_row(r) for r in rows]

    @translate_db_errors
    def find(self, user_id: str, credential_id: str) -> WebAuthnCredential | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                _SELECT.where(
                    _CREDENTIALS.c.credential_id == credential_id,
                    _CREDENTIALS.c.user_id == user_id,
                )
            ).first()
            return None if row is None else credential_from_row(row)

    @translate_db_errors
    def record_use(
        self, factor_id: str, *, previous: int, sign_count: int, backed_up: bool, now: float
    ) -> bool:
        values = {
            "b_factor_id": factor_id,
            "b_previous": previous,
            "b_sign_count": sign_count,
            "b_backed_up": backed_up,
            "b_now": now,
        }
        with self._single.write() as connection:
            return connection.execute(_RECORD_USE, values).rowcount == 1

    @translate_db_errors
    def rename(self, user_id: str, factor_id: str, name: str) -> bool:
        with self._engine.begin() as connection:
            result = connection.execute(
                sa.update(_FACTORS)
                .where(_FACTORS.c.factor_id == factor_id, _FACTORS.c.user_id == user_id)
                .values(label=name)
            )
            return result.rowcount == 1
