"""The enrollment schema. Alembic migrations (adapters/alembic) create it; these map it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Index, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UserRow(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    firm_id: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class FactorRow(Base):
    __tablename__ = "factors"
    __table_args__ = (Index("ix_factors_user_id_type", "user_id", "type"),)

    factor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("users.user_id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(128))
    # Ciphertexts only (AES-GCM, bound to user and factor); never a plain secret or number.
    secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    phone_ciphertext: Mapped[str | None] = mapped_column(Text)
    phone_last2: Mapped[str | None] = mapped_column(String(2))
    phone_region: Mapped[str | None] = mapped_column(String(2))
    # RFC 6238 §5.2: the last accepted time step; a code of this step or earlier is a replay.
    last_totp_step: Mapped[int | None] = mapped_column(BigInteger)
    pending_challenge_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    activated_at: Mapped[float | None] = mapped_column(Float)
