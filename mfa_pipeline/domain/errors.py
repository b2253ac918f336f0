"""Domain errors. Each carries the contract's error code; the API maps classes to HTTP statuses."""

from __future__ import annotations

from typing import Any, ClassVar


class MfaError(Exception):
    """Base of every error a client may see. `message` is safe to show: it never holds a secret."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFoundError(MfaError):
    code = "not_found"


class InvalidRequestError(MfaError):
    code = "invalid_request"

    def __init__(self, message: str, *, field: str, **details: Any) -> None:
        super().__init__(message, field=field, **details)


class InvalidCodeError(MfaError):
    """A code of the wrong shape: it is refused before it can count as an attempt."""

    code = "invalid_code"


class WrongCodeError(InvalidCodeError):
    """A well-formed code that did not match; it used one attempt."""

    def __init__(self, message: str, *, attempts_remaining: int, **details: Any) -> None:
        super().__init__(message, attempts_remaining=attempts_remaining, **details)
        self.attempts_remaining = attempts_remaining


class ChallengeExpiredError(MfaError):
    code = "challenge_expired"


class ChallengeCompletedError(MfaError):
    code = "challenge_completed"


class TooManyAttemptsError(MfaError):
    code = "too_many_attempts"


class RateLimitedError(MfaError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = max(1, retry_after)


class FactorNotEnrolledError(MfaError):
    code = "factor_not_enrolled"


class FactorStateError(MfaError):
    code = "factor_state"


class InvalidPhoneError(MfaError):
    code = "invalid_phone"


class UnavailableError(MfaError):
    code = "unavailable"


class UnauthenticatedError(MfaError):
    code = "unauthenticated"


class TooManyResendsError(MfaError):
    """No more codes for this challenge; `retry_after`: when it expires (a new login works now)."""

    code = "too_many_resends"

    def __init__(self, message: str, *, retry_after: int, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = max(1, retry_after)


class FactorExistsError(MfaError):
    code = "factor_exists"


class FactorNotAllowedError(MfaError):
    """The firm's policy does not allow this factor type."""

    code = "factor_not_allowed"


class ActorMfaRequiredError(MfaError):
    """An administrator without MFA of their own may not administer their firm's MFA."""

    code = "actor_mfa_required"


class ForbiddenError(MfaError):
    """The caller may not do this (a member, or an administrator of another firm)."""

    code = "forbidden"


class InvalidSignatureError(MfaError):
    """A push answer whose signature, device or timestamp does not check out (401)."""

    code = "invalid_signature"


class IdempotencyKeyReusedError(MfaError):
    """An `Idempotency-Key` seen before came with another request body (422)."""

    code = "idempotency_key_reused"


class RequestInProgressError(MfaError):
    """The first request with this `Idempotency-Key` has not finished yet (409)."""

    code = "request_in_progress"


class FactorLockedError(MfaError):
    """The failure budget is spent: the user's TOTP and SMS factors are locked (423)."""

    code = "factor_locked"
