"""Users and their enrolled factors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mfa_pipeline.domain.challenges import FactorType


class FactorStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    INACTIVE = "inactive"  # a push device whose token FCM no longer knows


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    firm_id: str | None
    created_at: float


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
    last_totp_step: int | None = None
    pending_challenge_id: str | None = None
    label: str | None = None
    # Push devices: the platform, the FCM registration token (encrypted: it addresses the
    # phone) and the Ed25519 public key that checks the device's answers (sealed, so that it
    # cannot be swapped for another in the database).
    platform: str | None = None
    push_token_ciphertext: str | None = None
    public_key: str | None = None

    @property
    def is_active(self) -> bool:
        return self.status is FactorStatus.ACTIVE


def masked_phone(last2: str | None) -> str | None:
    """A phone number as logs and lists may show it: every digit hidden but the last two."""
    return None if last2 is None else f"*******{last2}"


# The order `auto` tries factors in (contract: push, else TOTP, else SMS).
AUTO_PREFERENCE = (FactorType.PUSH, FactorType.TOTP, FactorType.SMS)
