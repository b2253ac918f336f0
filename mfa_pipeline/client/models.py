"""The contract's response bodies as typed models.

They are the client's own, not the server's schemas: a client pinned to one release must keep
reading answers from a newer server, so unknown fields are ignored and only the contract's
fields are declared (plus a few documented extras the reference app shows).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Statuses after which a challenge never changes again.
FINAL_STATUSES = frozenset({"verified", "approved", "denied", "expired", "locked", "failed"})

FactorName = Literal["auto", "webauthn", "sms", "push", "totp", "backup_code"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RequestContext(_Model):
    """Who is logging in, as the login backend saw them; kept in the audit trail."""

    ip: str | None = None
    user_agent: str | None = None
    application: str | None = None


class Factor(_Model):
    factor_id: str
    type: str
    status: str
    created_at: str | None = None
    activated_at: str | None = None
    phone_masked: str | None = None
    device_name: str | None = None
    platform: str | None = None
    name: str | None = None  # passkeys and security keys
    credential_id: str | None = None
    transports: list[str] | None = None
    backup_eligible: bool | None = None
    backed_up: bool | None = None
    last_used_at: str | None = None


class User(_Model):
    user_id: str
    firm_id: str | None = None
    role: str = "member"
    mfa_enabled: bool
    factors: list[Factor] = Field(default_factory=list)
    backup_codes_remaining: int = 0
    enrollment_required: bool = False
    locked_until: str | None = None  # TOTP and SMS locked by too many wrong codes until then


class TotpEnrollment(_Model):
    factor_id: str
    type: Literal["totp"] = "totp"
    status: str
    secret: str
    otpauth_uri: str
    qr_svg: str


class SmsEnrollment(_Model):
    factor_id: str
    type: Literal["sms"] = "sms"
    status: str
    phone_e164: str
    phone_display: str
    challenge_id: str


class PushDevice(_Model):
    factor_id: str
    type: Literal["push"] = "push"
    status: str
    device_id: str
    refreshed: bool = False


class Activation(_Model):
    factor_id: str | None = None
    status: str


class BackupCodes(_Model):
    codes: list[str]
    generated_at: str | None = None


class ResetResult(_Model):
    user_id: str
    factors_removed: int
    backup_codes_removed: int
    trusted_sessions_revoked: int


class FirmPolicy(_Model):
    firm_id: str
    require_mfa: bool
    allowed_factors: list[str] = Field(default_factory=list)
    updated_at: str | None = None
    updated_by: str | None = None


class SkippedInvitation(_Model):
    user_id: str
    reason: str  # unknown_user, not_in_firm or already_enrolled


class Invitations(_Model):
    invited: list[str] = Field(default_factory=list)
    skipped: list[SkippedInvitation] = Field(default_factory=list)


class AuditEvent(_Model):
    id: int
    event: str
    created_at: str | None = None
    actor_id: str | None = None
    application: str | None = None
    outcome: str | None = None
    factor: str | None = None


class AuditPage(_Model):
    user_id: str
    events: list[AuditEvent]
    next_before: int | None = None


class Preauth(_Model):
    result: Literal["auth", "allow", "enroll", "bypass"]
    factors: list[Factor] = Field(default_factory=list)
    # An administrator's invitation to enable MFA (with `bypass` only): show the banner.
    invited: bool = False
    invited_by: str | None = None
    invited_at: str | None = None

    def has(self, factor_type: str) -> bool:
        return any(f.type == factor_type for f in self.factors)


class Delivery(_Model):
    status: str
    attempts: int = 0
    error_code: str | None = None


class Challenge(_Model):
    challenge_id: str
    factor: str
    factor_id: str | None = None
    status: str
    expires_at: str | None = None
    attempts_remaining: int | None = None
    delivery: Delivery | None = None
    number_match: str | None = None
    # WebAuthn: the request options, for `PublicKeyCredential.parseRequestOptionsFromJSON`.
    public_key: dict[str, Any] | None = None
    purpose: str = "login"  # `enrollment`: confirms a new SMS factor (activate, not verify)
    trusted_token: str | None = None
    trusted_until: str | None = None
    warning: str | None = None
    backup_codes_remaining: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class Verification(_Model):
    status: str
    trusted_token: str | None = None
    trusted_until: str | None = None
    warning: str | None = None
    backup_codes_remaining: int | None = None


class PushResponse(_Model):
    challenge_id: str | None = None
    status: Literal["approved", "denied"]


class WebAuthnOptions(_Model):
    """Creation options for `PublicKeyCredential.parseCreationOptionsFromJSON`; valid 5 minutes."""

    registration_id: str
    public_key: dict[str, Any]


class WebAuthnRegistration(_Model):
    factor_id: str
    type: Literal["webauthn"] = "webauthn"
    status: str
    name: str
    credential_id: str
    transports: list[str] = []
    backup_eligible: bool = False
    backed_up: bool = False
