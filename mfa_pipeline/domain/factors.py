"""Users and their enrolled factors."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from mfa_pipeline.domain.challenges import FactorType

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mfa_pipeline.domain.webauthn import WebAuthnCredential


class FactorStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    INACTIVE = "inactive"  # a push device whose token FCM no longer knows


class Role(StrEnum):
    """A user's role in their firm (contract): only an `admin` administers the firm's MFA."""

    MEMBER = "member"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    firm_id: str | None
    created_at: float
    role: Role = Role.MEMBER
    # The failure budget locked the user's TOTP and SMS factors until then (None: open).
    locked_until: float | None = None

    def code_factors_locked(self, now: float) -> bool:
        return self.locked_until is not None and now < self.locked_until


@dataclass(frozen=True, slots=True)
class Factor:
    """An enrolled factor. Secrets stay encrypted here; services decrypt only when they must."""

    factor_id: str
    user_id: str
    type: FactorType
    status: FactorStatus
    created_at: float
    activated_at: float | None = None
    secret_ciphertext: str | None = None
    phone_ciphertext: str | None = None
    phone_last2: str | None = None
    phone_region: str | None = None
    pending_challenge_id: str | None = None
    label: str | None = None
    # Push devices: the platform, the FCM registration token (encrypted: it addresses the
    # phone) and the Ed25519 public key that checks the device's answers (sealed, so that it
    # cannot be swapped for another in the database).
    platform: str | None = None
    push_token_ciphertext: str | None = None
    public_key: str | None = None
    # A passkey or security key's credential, when the repository read it with the factor
    # (the login's one read); None otherwise, and for other factors.
    credential: WebAuthnCredential | None = None

    @property
    def is_active(self) -> bool:
        return self.status is FactorStatus.ACTIVE


def masked_phone(last2: str | None) -> str | None:
    """A phone number as logs and lists may show it: every digit hidden but the last two."""
    return None if last2 is None else f"*******{last2}"


# The order `auto` tries factors in (contract: WebAuthn, the one that cannot be phished, then
# push, TOTP, SMS).
AUTO_PREFERENCE = (FactorType.WEBAUTHN, FactorType.PUSH, FactorType.TOTP, FactorType.SMS)


# Pending SMS numbers per user. Each enrollment texts its number, so without a bound one account
# could keep texting new phones; the newest few stay confirmable, older ones are dropped.
MAX_PENDING_SMS_FACTORS = 3


def pending_sms_beyond_limit(
    factors: Iterable[Factor], *, newest: str, keep: int = MAX_PENDING_SMS_FACTORS
) -> list[Factor]:
    """The pending SMS factors to drop so that only the newest `keep` remain (oldest first).

    `newest` (the factor just enrolled) is always kept, even when created in the same instant.
    """
    pending = sorted(
        (f for f in factors if f.type is FactorType.SMS and f.status is FactorStatus.PENDING),
        key=lambda f: (f.factor_id == newest, f.created_at, f.factor_id),
    )
    return pending[: max(0, len(pending) - keep)]


def new_factor_id() -> str:
    """A factor's id: random, URL-safe, and telling nothing about its user or its order."""
    return f"f_{secrets.token_urlsafe(12)}"
