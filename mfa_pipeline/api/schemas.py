"""Request and response bodies: the contract's field names, and the generated OpenAPI schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mfa_pipeline.domain.challenges import RequestedFactor

# Ids end up inside Redis keys and log lines: a closed alphabet keeps both safe. They are also
# URL path segments, so `.` and `..` (dot-segments, RFC 3986 §5.2.4, removed by clients and
# proxies) are refused: such a user could never be addressed again. Written without lookahead
# so that every engine (pydantic's Rust regex, schemathesis) reads it alike.
_ID_CHAR = r"[A-Za-z0-9._@+:\-]"
_NOT_DOT = r"[A-Za-z0-9_@+:\-]"
ID_PATTERN = rf"^(?:{_ID_CHAR}{{3,255}}|{_NOT_DOT}{_ID_CHAR}?|\.{_NOT_DOT})$"
# Integers reach SQL columns (64-bit signed): anything larger would overflow the driver.
MAX_SQL_INT = 2**63 - 1
UserId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Code = Annotated[str, StringConstraints(max_length=32)]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PutUserBody(Request):
    firm_id: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = Field(
        default=None, description="Required to create; left out, the user stays in their firm."
    )
    role: Literal["member", "admin"] | None = Field(
        default=None, description="`member` when a user is created; left out, unchanged."
    )


class FactorOut(BaseModel):
    factor_id: str
    type: str
    status: str
    created_at: str | None
    activated_at: str | None = None
    phone_masked: str | None = None
    device_name: str | None = None
    platform: str | None = None
    # Passkeys and security keys (type webauthn).
    name: str | None = None
    credential_id: str | None = None
    transports: list[str] | None = None
    backup_eligible: bool | None = None
    backed_up: bool | None = None
    last_used_at: str | None = None


class UserOut(BaseModel):
    user_id: str
    firm_id: str | None
    role: Literal["member", "admin"]
    mfa_enabled: bool
    factors: list[FactorOut]
    backup_codes_remaining: int
    enrollment_required: bool
    locked_until: str | None = Field(
        default=None,
        description="The failure budget locked the TOTP and SMS factors until then; "
        "push, WebAuthn, backup codes or an administrator's reset lift it sooner.",
    )


class TotpEnrollmentOut(BaseModel):
    factor_id: str
    type: Literal["totp"] = "totp"
    status: str
    secret: str
    otpauth_uri: str
    qr_svg: str


class SmsEnrollBody(Request):
    phone: Annotated[str, StringConstraints(max_length=64)]
    region: Annotated[str, StringConstraints(max_length=2, min_length=2)] | None = None


class SmsEnrollmentOut(BaseModel):
    factor_id: str
    type: Literal["sms"] = "sms"
    status: str
    phone_e164: str
    phone_display: str
    phone_national: str
    region: str | None
    challenge_id: str


class ActivateBody(Request):
    code: Code


class ActivateOut(BaseModel):
    factor_id: str
    status: str


class ContextIn(Request):
    ip: Annotated[str, StringConstraints(max_length=64)] | None = None
    user_agent: Annotated[str, StringConstraints(max_length=512)] | None = None
    application: Annotated[str, StringConstraints(max_length=64)] | None = None


class CreateChallengeBody(Request):
    user_id: UserId
    factor: RequestedFactor = RequestedFactor.AUTO
    factor_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    context: ContextIn = Field(default_factory=ContextIn)
    code: Code | None = None
    remember_device: bool = False


class DeliveryOut(BaseModel):
    status: str
    attempts: int
    provider_id: str | None = None
    error_code: str | None = None
    sent_at: str | None = None
    updated_at: str | None = None


class ChallengeOut(BaseModel):
    challenge_id: str
    user_id: str
    factor: str
    factor_id: str | None
    status: str
    created_at: str | None
    expires_at: str | None
    attempts_remaining: int
    delivery: DeliveryOut
    number_match: str | None = None
    fraud_reported: bool = False
    # WebAuthn: PublicKeyCredentialRequestOptionsJSON for `navigator.credentials.get`.
    public_key: dict[str, Any] | None = None
    purpose: Literal["login", "enrollment"] = Field(
        default="login",
        description="`enrollment` confirms a new SMS factor (activate it, do not verify it)",
    )
    # After a verified answer: "keep me logged in" (remember_device) and backup-code warnings.
    trusted_token: str | None = None
    trusted_until: str | None = None
    warning: str | None = None
    backup_codes_remaining: int | None = None


# The JSON form of a WebAuthn response (`credential.toJSON()`); the body limit bounds its size.
Credential = dict[str, Any]


class VerifyBody(Request):
    code: Code | None = Field(default=None, description="For TOTP, SMS and backup codes.")
    credential: Credential | None = Field(
        default=None,
        description="For WebAuthn: the assertion, AuthenticationResponseJSON.",
    )
    remember_device: bool = False


class VerifyOut(BaseModel):
    challenge_id: str
    status: str
    # After a verified answer: "keep me logged in" (remember_device) and backup-code warnings.
    trusted_token: str | None = None
    trusted_until: str | None = None
    warning: str | None = None
    backup_codes_remaining: int | None = None


class PreauthBody(Request):
    user_id: UserId
    trusted_token: Annotated[str, StringConstraints(max_length=256)] | None = None


class PreauthOut(BaseModel):
    result: Literal["auth", "allow", "enroll", "bypass"]
    factors: list[FactorOut]


class InvitedPreauthOut(PreauthOut):
    """`bypass` for a user an administrator invited to enable MFA: the page may ask them."""

    invited: Literal[True] = True
    invited_by: str = Field(description="The administrator who sent the invitation.")
    invited_at: str


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


class PushEnrollBody(Request):
    device_name: Annotated[str, StringConstraints(max_length=128)] | None = None
    platform: Literal["android", "ios"]
    push_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    public_key: Annotated[str, StringConstraints(max_length=128)]


class PushEnrollmentOut(BaseModel):
    factor_id: str
    type: Literal["push"] = "push"
    status: str
    device_id: str
    device_name: str | None = None
    platform: str
    refreshed: bool = False  # a known device (same public key) re-registered: new token


class PushResponseBody(Request):
    challenge_id: Annotated[str, StringConstraints(max_length=64)]
    device_id: Annotated[str, StringConstraints(max_length=64)]
    decision: Literal["approve", "deny"]
    number: Annotated[str, StringConstraints(max_length=8)] | None = None
    reason: Annotated[str, StringConstraints(max_length=64)] | None = None
    timestamp: int = Field(ge=0, le=2**40)
    signature: Annotated[str, StringConstraints(max_length=256)]


class PushResponseOut(BaseModel):
    challenge_id: str
    status: Literal["approved", "denied"]


CredentialName = Annotated[str, StringConstraints(max_length=64)]


class WebAuthnOptionsBody(Request):
    name: CredentialName | None = None


class WebAuthnOptionsOut(BaseModel):
    registration_id: str
    public_key: dict[str, Any] = Field(
        description="PublicKeyCredentialCreationOptionsJSON for `navigator.credentials.create`."
    )


class WebAuthnRegisterBody(Request):
    registration_id: Annotated[str, StringConstraints(max_length=64)]
    credential: Credential = Field(description="The new credential, RegistrationResponseJSON.")
    name: CredentialName | None = None


class WebAuthnRegistrationOut(BaseModel):
    factor_id: str
    type: Literal["webauthn"] = "webauthn"
    status: str
    name: str
    credential_id: str
    transports: list[str]
    backup_eligible: bool
    backed_up: bool


class RenameFactorBody(Request):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
