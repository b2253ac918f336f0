"""Every error as the contract's `{"error": {"code", "message", ...}}`; never a stack trace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import kombu.exceptions
import redis
import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mfa_pipeline.domain import errors as e
from mfa_pipeline.domain.codes import MALFORMED_CODE_MESSAGE
from mfa_pipeline.domain.sms_spend import SmsUnavailableError
from mfa_pipeline.ports import SecretDecryptError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from fastapi import FastAPI, Request

log = structlog.get_logger(__name__)

STATUS: dict[type[e.MfaError], int] = {
    e.NotFoundError: 404,
    e.InvalidRequestError: 422,
    e.InvalidCodeError: 400,
    e.ChallengeExpiredError: 410,
    e.ChallengeCompletedError: 409,
    e.TooManyAttemptsError: 429,
    e.RateLimitedError: 429,
    e.TooManyResendsError: 429,
    e.FactorNotEnrolledError: 409,
    e.FactorStateError: 409,
    e.FactorExistsError: 409,
    e.InvalidPhoneError: 422,
    e.UnavailableError: 503,
    e.UnauthenticatedError: 401,
    e.FactorNotAllowedError: 403,
    e.ActorMfaRequiredError: 409,
    e.ForbiddenError: 403,
    e.InvalidSignatureError: 401,
    e.IdempotencyKeyReusedError: 422,
    e.RequestInProgressError: 409,
    e.FactorLockedError: 423,
    SmsUnavailableError: 503,
}

_HTTP_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    http_status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **details: Any,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, **details}}
    return JSONResponse(body, status_code=http_status, headers=headers)


def status_for(exc: e.MfaError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.MfaError)  # noqa: S101 - registered for MfaError only
    headers: dict[str, str] = {}
    if isinstance(exc, e.RateLimitedError | e.TooManyResendsError | SmsUnavailableError):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, e.UnavailableError):
        headers["Retry-After"] = "1"
    elif isinstance(exc, e.UnauthenticatedError):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(status_for(exc), exc.code, exc.message, headers or None, **exc.details)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(location) or "body"
    if first.get("type") == "json_invalid":
        return error_response(422, "invalid_request", "The body is not valid JSON.", field="body")
    if _is_malformed_code(exc.errors()):
        # A code sent as a JSON number, or far too long, is a malformed code like `12a456`:
        # the contract's 400 invalid_code, and it costs no attempt (nothing was looked up).
        return error_response(400, "invalid_code", MALFORMED_CODE_MESSAGE)
    message = str(first.get("msg", "Invalid request."))
    return error_response(422, "invalid_request", f"{field}: {message}", field=field)


def _is_malformed_code(errors: Sequence[Any]) -> bool:
    """True when the body's `code` is present but not a string of a sane length."""
    return any(
        tuple(error.get("loc", ())) == ("body", "code") and error.get("type") != "missing"
        for error in errors
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    if exc.status_code == 400:  # noqa: PLR2004 - FastAPI's "error parsing the body"
        # A body json cannot parse at all (e.g. nested thousands deep, a RecursionError inside
        # the parser): the same answer as malformed JSON, the contract's 422 invalid_request.
        return error_response(422, "invalid_request", "The body is not valid JSON.", field="body")
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else "Request refused."
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _redis_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("store_unavailable", error=type(exc).__name__)
    return error_response(
        503, "unavailable", "The service is temporarily unavailable.", {"Retry-After": "1"}
    )


async def _secret_unreadable(_: Request, exc: Exception) -> JSONResponse:
    """A stored secret that does not decrypt: a removed key, or a ciphertext moved to another row.

    Not the caller's fault and not fixable by retrying: an operator must restore the key (or the
    user enroll again), so it is an alert, never a 500 with a stack trace.
    """
    log.error("secret_unreadable", outcome="alert", error=str(exc))
    return error_response(
        503,
        "unavailable",
        "A stored secret of this user cannot be read right now; use another method.",
        reason="secret_unreadable",
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", "Something went wrong on our side.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(e.MfaError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(redis.ConnectionError, _redis_down)
    app.add_exception_handler(redis.TimeoutError, _redis_down)
    app.add_exception_handler(kombu.exceptions.OperationalError, _redis_down)  # the broker
    app.add_exception_handler(SecretDecryptError, _secret_unreadable)
    app.add_exception_handler(Exception, _unexpected)
