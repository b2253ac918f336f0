"""Stored ciphertexts in SQL, walked in batches for key rotation (`admin rotate-keys`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from mfa_pipeline.adapters.sql_models import FactorRow
from mfa_pipeline.adapters.sql_repository import translate_db_errors
from mfa_pipeline.ports import SecretRotationRepository, StoredSecret

if TYPE_CHECKING:
    from collections.abc import Sequence

_F = FactorRow.__table__.c
_HAS_SECRET = sa.or_(
    _F.secret_ciphertext.is_not(None),
    _F.phone_ciphertext.is_not(None),
    _F.push_token_ciphertext.is_not(None),
    _F.public_key.is_not(None),
)


# Compare-and-set: a factor re-enrolled or removed since it was read keeps its own value.
_REPLACE = (
    sa.update(FactorRow)
    .where(
        _F.factor_id == sa.bindparam("b_id"),
        _F.secret_ciphertext.is_not_distinct_from(sa.bindparam("b_secret")),
        _F.phone_ciphertext.is_not_distinct_from(sa.bindparam("b_phone")),
        _F.push_token_ciphertext.is_not_distinct_from(sa.bindparam("b_token")),
        _F.public_key.is_not_distinct_from(sa.bindparam("b_key")),
    )
    .values(
        secret_ciphertext=sa.bindparam("a_secret"),
        phone_ciphertext=sa.bindparam("a_phone"),
        push_token_ciphertext=sa.bindparam("a_token"),
        public_key=sa.bindparam("a_key"),
    )
)


class SqlSecretRotationRepository(SecretRotationRepository):
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    @translate_db_errors
    def batch_after(self, factor_id: str | None, *, limit: int) -> list[StoredSecret]:
        query = sa.select(
            _F.factor_id,
            _F.user_id,
            _F.secret_ciphertext,
            _F.phone_ciphertext,
            _F.push_token_ciphertext,
            _F.public_key,
        )
        query = query.where(_HAS_SECRET)
        if factor_id is not None:
            query = query.where(_F.factor_id > factor_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(_F.factor_id).limit(limit))
            return [StoredSecret(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    @translate_db_errors
    def replace(self, old: Sequence[StoredSecret], new: Sequence[StoredSecret]) -> int:
        params = [
            {
                "b_id": before.factor_id,
                "b_secret": before.secret_ciphertext,
                "b_phone": before.phone_ciphertext,
                "b_token": before.push_token_ciphertext,
                "b_key": before.public_key_ciphertext,
                "a_secret": after.secret_ciphertext,
                "a_phone": after.phone_ciphertext,
                "a_token": after.push_token_ciphertext,
                "a_key": after.public_key_ciphertext,
            }
            for before, after in zip(old, new, strict=True)
        ]
        if not params:
            return 0
        with self._engine.begin() as conn:
            if conn.dialect.supports_sane_multi_rowcount:
                # One prepared statement for the whole batch (executemany).
                return int(getattr(conn.execute(_REPLACE, params), "rowcount", 0))
            return sum(int(getattr(conn.execute(_REPLACE, p), "rowcount", 0)) for p in params)

    @translate_db_errors
    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(
                conn.scalar(sa.select(sa.func.count()).select_from(FactorRow).where(_HAS_SECRET))
                or 0
            )
