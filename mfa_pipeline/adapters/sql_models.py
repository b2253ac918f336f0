"""The enrollment schema. Alembic migrations (adapters/alembic) create it; these map it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, MetaData, String, Text
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
    # `member` or `admin` of the firm: administrators set the policy and reset others' MFA.
    role: Mapped[str] = mapped_column(String(16), server_default="member")
    # The failure budget's lock of the TOTP and SMS factors (NIST SP 800-63B rev. 4 §3.2.2).
    locked_until: Mapped[float | None] = mapped_column(Float)


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
    # ISO 3166 alpha-2, or phonenumbers' "001" for non-geographic (satellite) numbers.
    phone_region: Mapped[str | None] = mapped_column(String(3))
    # No longer written or read: the last accepted TOTP step lives in the challenge store
    # (`claim_totp_step`). Kept so processes of the previous release, which still write it,
    # keep working during a rolling upgrade; a later migration drops it.
    last_totp_step: Mapped[int | None] = mapped_column(BigInteger)
    pending_challenge_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    activated_at: Mapped[float | None] = mapped_column(Float)
    platform: Mapped[str | None] = mapped_column(String(16))
    push_token_ciphertext: Mapped[str | None] = mapped_column(Text)
    # Ed25519 public key, sealed like the secrets: not secret, but bound to its user and
    # factor (AES-GCM associated data), so a key swapped in the database never verifies.
    public_key: Mapped[str | None] = mapped_column(Text)


class BackupCodeRow(Base):
    """One single-use backup code: only its salted argon2id hash is kept."""

    __tablename__ = "backup_codes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("users.user_id", ondelete="CASCADE"), index=True
    )
    batch_id: Mapped[str] = mapped_column(String(32))
    # A short keyed tag of the code narrows the argon2 check to one row per attempt.
    lookup: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float)


class TrustedSessionRow(Base):
    """A "keep me logged in" token: only its SHA-256 is kept, bound to one user."""

    __tablename__ = "trusted_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("users.user_id", ondelete="CASCADE"), index=True
    )
    application: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)


class FirmPolicyRow(Base):
    __tablename__ = "firm_policies"

    firm_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    require_mfa: Mapped[bool] = mapped_column(Boolean)
    # Comma-separated factor types; empty means every factor is allowed.
    allowed_factors: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str | None] = mapped_column(String(255))


class AuditEventRow(Base):
    """Append-only: rows are inserted, never updated or deleted (a user reset keeps them)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_user_id_id", "user_id", "id"),
        # The trail is listed by event time: batched rows get their ids after later events.
        Index("ix_audit_events_user_id_created_at", "user_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str | None] = mapped_column(String(255))
    firm_id: Mapped[str | None] = mapped_column(String(255))
    actor_id: Mapped[str | None] = mapped_column(String(255))
    application: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32))
    factor: Mapped[str | None] = mapped_column(String(16))
    factor_id: Mapped[str | None] = mapped_column(String(64))
    challenge_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[str | None] = mapped_column(Text)  # JSON; never a code or secret
    created_at: Mapped[float] = mapped_column(Float)


class WebAuthnCredentialRow(Base):
    """A passkey or security key; its factor row (type webauthn) holds name and status.

    Removing the factor (by the user, or an administrator's reset) removes this row with it.
    """

    __tablename__ = "webauthn_credentials"

    factor_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("factors.factor_id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    # base64url of the raw id; §5.1: at most 1023 bytes, so at most 1364 characters.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    # The COSE_Key, base64url. Public: it checks signatures, it cannot make them.
    public_key: Mapped[str] = mapped_column(Text)
    sign_count: Mapped[int] = mapped_column(BigInteger)
    transports: Mapped[str] = mapped_column(String(128))  # comma-separated
    aaguid: Mapped[str] = mapped_column(String(36))
    backup_eligible: Mapped[bool] = mapped_column(Boolean)
    backed_up: Mapped[bool] = mapped_column(Boolean)
    last_used_at: Mapped[float | None] = mapped_column(Float)


class MfaInvitationRow(Base):
    """An administrator's open invitation to enable MFA; deleted when it ends."""

    __tablename__ = "mfa_invitations"

    user_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    # Stable across webhook redeliveries: the event ids derive from it.
    invitation_id: Mapped[str] = mapped_column(String(64), unique=True)
    firm_id: Mapped[str] = mapped_column(String(255), index=True)
    invited_by: Mapped[str] = mapped_column(String(255))
    invited_at: Mapped[float] = mapped_column(Float)


def end_invitation(user_id: str) -> sa.Delete:
    """Enrolling a factor ends the user's invitation: run in the transaction that activates it."""
    return sa.delete(MfaInvitationRow).where(MfaInvitationRow.user_id == user_id)
