"""A Python client of the MFA service's HTTP contract, sync (`MfaClient`) and async.

It talks to the service over HTTP only and imports nothing of the service itself, so a login
backend can depend on it alone:

    with MfaClient("http://127.0.0.1:8000", api_key=KEY) as mfa:
        challenge = mfa.create_challenge("alice", factor="push")
        result = mfa.wait_for_result(challenge.challenge_id, timeout=60)

Errors are the typed exceptions of `mfa_pipeline.client.errors`, each with the contract's
code; 503s and `rate_limited` 429s are retried honouring `Retry-After` (`RetryPolicy`).
"""

from mfa_pipeline.client._async import AsyncMfaClient
from mfa_pipeline.client._calls import NO_RETRIES, RetryPolicy
from mfa_pipeline.client._sync import MfaClient
from mfa_pipeline.client.errors import (
    ActorMfaRequiredError,
    ChallengeCompletedError,
    ChallengeExpiredError,
    FactorExistsError,
    FactorLockedError,
    FactorNotAllowedError,
    FactorNotEnrolledError,
    FactorStateError,
    ForbiddenError,
    InvalidCodeError,
    InvalidCredentialError,
    InvalidPhoneError,
    InvalidRequestError,
    InvalidSignatureError,
    MfaApiError,
    MfaClientError,
    MfaConnectionError,
    NotFoundError,
    RateLimitedError,
    SmsUnavailableError,
    TooManyAttemptsError,
    TooManyResendsError,
    UnauthenticatedError,
    UnavailableError,
    WaitTimeoutError,
)
from mfa_pipeline.client.models import (
    FINAL_STATUSES,
    Activation,
    AuditEvent,
    AuditPage,
    BackupCodes,
    Challenge,
    Delivery,
    Factor,
    FirmPolicy,
    Preauth,
    PushDevice,
    PushResponse,
    RequestContext,
    ResetResult,
    SmsEnrollment,
    TotpEnrollment,
    User,
    Verification,
    WebAuthnOptions,
    WebAuthnRegistration,
)

__all__ = [
    "FINAL_STATUSES",
    "NO_RETRIES",
    "Activation",
    "ActorMfaRequiredError",
    "AsyncMfaClient",
    "AuditEvent",
    "AuditPage",
    "BackupCodes",
    "Challenge",
    "ChallengeCompletedError",
    "ChallengeExpiredError",
    "Delivery",
    "Factor",
    "FactorExistsError",
    "FactorLockedError",
    "FactorNotAllowedError",
    "FactorNotEnrolledError",
    "FactorStateError",
    "FirmPolicy",
    "ForbiddenError",
    "InvalidCodeError",
    "InvalidCredentialError",
    "InvalidPhoneError",
    "InvalidRequestError",
    "InvalidSignatureError",
    "MfaApiError",
    "MfaClient",
    "MfaClientError",
    "MfaConnectionError",
    "NotFoundError",
    "Preauth",
    "PushDevice",
    "PushResponse",
    "RateLimitedError",
    "RequestContext",
    "ResetResult",
    "RetryPolicy",
    "SmsEnrollment",
    "SmsUnavailableError",
    "TooManyAttemptsError",
    "TooManyResendsError",
    "TotpEnrollment",
    "UnauthenticatedError",
    "UnavailableError",
    "User",
    "Verification",
    "WaitTimeoutError",
    "WebAuthnOptions",
    "WebAuthnRegistration",
]
