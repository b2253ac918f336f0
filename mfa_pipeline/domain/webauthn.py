"""Passkeys and security keys (WebAuthn): stored credentials and the rules we apply to them.

The ceremonies themselves (CBOR, COSE keys, attestation, signatures) are checked by an adapter
behind the `WebAuthnCeremony` port; this module holds what the service decides on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mfa_pipeline.domain.errors import MfaError

# How long registration options stay usable (contract: 5 minutes).
REGISTRATION_TTL_SECONDS = 300
# allowCredentials and excludeCredentials list every credential of the user: keep them short.
MAX_CREDENTIALS_PER_USER = 20
MAX_NAME_LENGTH = 64
DEFAULT_NAME = "Passkey"


class CredentialRejection(StrEnum):
    """Why a registration or an assertion was refused (`reason` of `invalid_credential`)."""

    MALFORMED = "malformed"  # not the JSON form of a credential, or bad base64url
    CHALLENGE_MISMATCH = "challenge_mismatch"  # signed over another (or a reused) challenge
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    RP_ID_MISMATCH = "rp_id_mismatch"
    USER_VERIFICATION_MISSING = "user_verification_missing"
    UNKNOWN_CREDENTIAL = "unknown_credential"  # not one of this user's credentials
    BAD_SIGNATURE = "bad_signature"
    COUNTER_REGRESSED = "counter_regressed"  # a possible cloned authenticator
    UNSUPPORTED = "unsupported"  # an algorithm or format we do not accept
    INVALID = "invalid"  # refused by the checks for another reason


_MESSAGES = {
    CredentialRejection.MALFORMED: "The credential is not well-formed WebAuthn JSON.",
    CredentialRejection.CHALLENGE_MISMATCH: (
        "The credential answers another challenge; start again."
    ),
    CredentialRejection.ORIGIN_NOT_ALLOWED: "The credential was made on a site we do not serve.",
    CredentialRejection.RP_ID_MISMATCH: "The credential belongs to another site.",
    CredentialRejection.USER_VERIFICATION_MISSING: (
        "The authenticator did not verify the user (PIN, fingerprint or face)."
    ),
    CredentialRejection.UNKNOWN_CREDENTIAL: "That passkey or security key is not registered here.",
    CredentialRejection.BAD_SIGNATURE: "The credential's signature does not check out.",
    CredentialRejection.COUNTER_REGRESSED: (
        "This security key's counter went backwards: it may have been copied. "
        "Use another method and remove the key."
    ),
    CredentialRejection.UNSUPPORTED: "That kind of authenticator is not supported.",
    CredentialRejection.INVALID: "The credential was refused.",
}


class InvalidCredentialError(MfaError):
    """A WebAuthn response that was refused (400 `invalid_credential`, with a `reason`)."""

    code = "invalid_credential"

    def __init__(self, reason: CredentialRejection, **details: Any) -> None:
        super().__init__(_MESSAGES[reason], reason=reason.value, **details)
        self.reason = reason


class WrongCredentialError(InvalidCredentialError):
    """A well-formed assertion that was refused on a login challenge; it used one attempt."""

    def __init__(
        self, reason: CredentialRejection, *, attempts_remaining: int, **details: Any
    ) -> None:
        super().__init__(reason, attempts_remaining=attempts_remaining, **details)
        self.attempts_remaining = attempts_remaining


@dataclass(frozen=True, slots=True)
class WebAuthnCredential:
    """A registered passkey or security key. Ids and keys are base64url text, as on the wire."""

    factor_id: str
    user_id: str
    credential_id: str
    public_key: str  # COSE_Key bytes, base64url; public, but only ever read by the adapter
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    backup_eligible: bool  # a multi-device (syncable) passkey
    backed_up: bool
    name: str
    created_at: float
    last_used_at: float | None = None


@dataclass(frozen=True, slots=True)
class CeremonyOptions:
    """Options for the browser (the JSON form) and the challenge they carry."""

    public_key: dict[str, Any]
    challenge: bytes


@dataclass(frozen=True, slots=True)
class VerifiedRegistration:
    credential_id: str
    public_key: str
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    backup_eligible: bool
    backed_up: bool

    def stored_as(
        self, *, factor_id: str, user_id: str, name: str, created_at: float
    ) -> WebAuthnCredential:
        """The credential as kept for the factor it becomes."""
        return WebAuthnCredential(
            factor_id=factor_id,
            user_id=user_id,
            credential_id=self.credential_id,
            public_key=self.public_key,
            sign_count=self.sign_count,
            transports=self.transports,
            aaguid=self.aaguid,
            backup_eligible=self.backup_eligible,
            backed_up=self.backed_up,
            name=name,
            created_at=created_at,
        )


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    credential_id: str
    new_sign_count: int
    backed_up: bool


def counter_regressed(stored: int, received: int) -> bool:
    """WebAuthn L3 §6.1.1: a counter that does not grow may be a cloned authenticator.

    Authenticators that do not count (many passkeys report 0 every time) are left alone.
    """
    if stored == 0 and received == 0:
        return False
    return received <= stored


def user_handle(user_id: str) -> bytes:
    """The opaque `user.id` given to authenticators: stable per user, not the user id itself.

    §14.6.1: the user handle must not hold personally identifying information.
    """
    return hashlib.sha256(b"mfa-pipeline webauthn user\x00" + user_id.encode()).digest()


def clean_name(name: str | None) -> str:
    """A credential's display name: trimmed, printable, bounded; a default when empty."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return text[:MAX_NAME_LENGTH] or DEFAULT_NAME
