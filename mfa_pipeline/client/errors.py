"""Typed exceptions for the contract's error codes.

Callers branch on the class (`except InvalidCodeError`) rather than on strings; each carries
the contract's `code`, the HTTP status, the human `message` and the error's extra fields
(`attempts_remaining`, `reason`, `field`, ...). A code this client does not know yet still
arrives as `MfaApiError` with its `code`, so a newer server never breaks an older client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from mfa_pipeline.client.models import Challenge


class MfaClientError(Exception):
    """Base of everything the client raises."""


class MfaConnectionError(MfaClientError):
    """The service could not be reached (refused, reset, timed out) after the retries."""


class WaitTimeoutError(MfaClientError, TimeoutError):
    """`wait_for_result` ran out of time; `challenge` is the last (still pending) state seen."""

    def __init__(self, challenge: Challenge) -> None:
        super().__init__(f"challenge {challenge.challenge_id} is still {challenge.status}")
        self.challenge = challenge


class MfaApiError(MfaClientError):
    """The service answered with the contract's `{"error": {...}}`."""

    code: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = code or type(self).code
        self.details = details or {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.status} {self.error_code}: {self.message}"


class UnauthenticatedError(MfaApiError):
    code = "unauthenticated"


class ForbiddenError(MfaApiError):
    code = "forbidden"


class NotFoundError(MfaApiError):
    code = "not_found"


class InvalidRequestError(MfaApiError):
    code = "invalid_request"

    @property
    def field(self) -> str | None:
        value = self.details.get("field")
        return str(value) if value is not None else None


class InvalidCodeError(MfaApiError):
    """A malformed code (no attempt used) or a wrong one (`attempts_remaining` is then set)."""

    code = "invalid_code"

    @property
    def attempts_remaining(self) -> int | None:
        value = self.details.get("attempts_remaining")
        return int(value) if value is not None else None

    @property
    def reason(self) -> str | None:
        """`clock_skew` or `replayed` for TOTP codes that matched the wrong step."""
        value = self.details.get("reason")
        return str(value) if value is not None else None


class InvalidCredentialError(MfaApiError):
    """A WebAuthn response that was refused; `reason` says why (`origin_not_allowed`, ...)."""

    code = "invalid_credential"

    @property
    def reason(self) -> str | None:
        value = self.details.get("reason")
        return str(value) if value is not None else None

    @property
    def attempts_remaining(self) -> int | None:
        value = self.details.get("attempts_remaining")
        return int(value) if value is not None else None


class ChallengeExpiredError(MfaApiError):
    code = "challenge_expired"


class ChallengeCompletedError(MfaApiError):
    code = "challenge_completed"


class TooManyAttemptsError(MfaApiError):
    """Five wrong codes: the challenge is locked. Final: never retried."""

    code = "too_many_attempts"


class RateLimitedError(MfaApiError):
    code = "rate_limited"


class TooManyResendsError(MfaApiError):
    code = "too_many_resends"


class InvalidPhoneError(MfaApiError):
    code = "invalid_phone"


class FactorNotEnrolledError(MfaApiError):
    code = "factor_not_enrolled"


class FactorStateError(MfaApiError):
    code = "factor_state"


class FactorExistsError(MfaApiError):
    code = "factor_exists"


class FactorNotAllowedError(MfaApiError):
    code = "factor_not_allowed"


class ActorMfaRequiredError(MfaApiError):
    code = "actor_mfa_required"


class InvalidSignatureError(MfaApiError):
    code = "invalid_signature"


class IdempotencyKeyReusedError(MfaApiError):
    """The idempotency key came before with another request: a bug in the caller."""

    code = "idempotency_key_reused"


class RequestInProgressError(MfaApiError):
    """The first request with this idempotency key is still running: retried."""

    code = "request_in_progress"


class FactorLockedError(MfaApiError):
    """Too many wrong codes: TOTP and SMS are locked; push or a backup code still work."""

    code = "factor_locked"


class UnavailableError(MfaApiError):
    code = "unavailable"


class SmsUnavailableError(UnavailableError):
    code = "sms_unavailable"


ERRORS: dict[str, type[MfaApiError]] = {
    cls.code: cls
    for cls in (
        UnauthenticatedError,
        ForbiddenError,
        NotFoundError,
        InvalidRequestError,
        InvalidCodeError,
        InvalidCredentialError,
        ChallengeExpiredError,
        ChallengeCompletedError,
        TooManyAttemptsError,
        RateLimitedError,
        TooManyResendsError,
        InvalidPhoneError,
        FactorNotEnrolledError,
        FactorStateError,
        FactorExistsError,
        FactorNotAllowedError,
        ActorMfaRequiredError,
        InvalidSignatureError,
        IdempotencyKeyReusedError,
        RequestInProgressError,
        FactorLockedError,
        UnavailableError,
        SmsUnavailableError,
    )
}
