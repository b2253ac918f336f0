"""Every call of the contract described once, as data; the sync and async clients only run them.

A `Call` is the request (method, path, body, query, headers) plus how to read the answer.
Keeping it free of I/O means the two clients cannot drift apart on paths, fields or error
mapping, and each client method is a one-line wrapper with its own precise signature.
"""

from __future__ import annotations

import email.utils
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import TypeAdapter

from mfa_pipeline.client import errors
from mfa_pipeline.client.models import (
    Activation,
    AuditPage,
    BackupCodes,
    Challenge,
    Factor,
    FactorName,
    FirmPolicy,
    Invitations,
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

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

T = TypeVar("T")

# The server caps a long-poll at 30 s (contract); the HTTP timeout leaves room above it.
MAX_WAIT_SECONDS = 30.0
LONG_POLL_MARGIN_SECONDS = 10.0


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # None: the client's default

    @property
    def idempotent(self) -> bool:
        """Safe to send again whatever happened: a POST with its idempotency key, or a read."""
        return self.method == "GET" or IDEMPOTENCY_HEADER in self.headers


IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_headers(key: str | None) -> dict[str, str]:
    """One key per logical call, sent again on every retry: the server creates once."""
    return {IDEMPOTENCY_HEADER: key or secrets.token_urlsafe(24)}


@dataclass(frozen=True)
class RetryPolicy:
    """When a refused request is tried again, and after how long.

    503 (`unavailable`, `sms_unavailable`), 429 `rate_limited` and 409 `request_in_progress`
    (the first try of a keyed call still runs) are retried, waiting what `Retry-After` says,
    else an exponential backoff with full jitter; a connection that could not even be opened,
    or (for a call with an idempotency key) one that broke before the answer, is retried the
    same way. 429 `too_many_attempts` (a locked challenge)
    and `too_many_resends` are final. A `Retry-After` longer than `max_retry_after` (a "not me"
    push block lasts 15 minutes) is not slept through: the error is raised with it, so the
    login page can tell the user when to come back.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, error: errors.MfaClientError) -> float | None:
        """Seconds to wait before retry number `attempt` (1-based), or None to give up."""
        if attempt > self.max_retries:
            return None
        if isinstance(error, errors.MfaApiError):
            retryable = isinstance(
                error,
                errors.UnavailableError | errors.RateLimitedError | errors.RequestInProgressError,
            )
            if not retryable:
                return None
            if error.retry_after is not None:
                return error.retry_after if error.retry_after <= self.max_retry_after else None
        elif not isinstance(error, errors.MfaConnectionError):
            return None
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


NO_RETRIES = RetryPolicy(max_retries=0)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_error(response: httpx.Response) -> errors.MfaApiError:
    """The contract's error body as its typed exception (any non-2xx answer)."""
    try:
        body = response.json()
        detail = body["error"]
        code = str(detail["code"])
        message = str(detail.get("message", ""))
        details = {k: v for k, v in detail.items() if k not in ("code", "message")}
    except (ValueError, KeyError, TypeError):
        code, message, details = "error", response.text[:200] or response.reason_phrase, {}
    cls = errors.ERRORS.get(code, errors.MfaApiError)
    return cls(
        message,
        status=response.status_code,
        code=code,
        details=details,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


def _seg(value: str) -> str:
    """One path segment: ids may hold `@`, `+` or `:`, so every reserved character is escaped."""
    return quote(value, safe="")


def _model(model: type[T]) -> Callable[[httpx.Response], T]:
    adapter = TypeAdapter(model)
    return lambda response: adapter.validate_json(response.content)


def _nothing(_: httpx.Response) -> None:
    return None


def _text(response: httpx.Response) -> str:
    return response.text


def _factors(response: httpx.Response) -> list[Factor]:
    return TypeAdapter(list[Factor]).validate_json(response.content)


# --- users and enrollment ------------------------------------------------------------------


def put_user(user_id: str, firm_id: str | None, role: str | None = None) -> Call[User]:
    # A field left out keeps its value: never send null for "unknown here".
    body = {k: v for k, v in (("firm_id", firm_id), ("role", role)) if v is not None}
    return Call("PUT", f"/v1/users/{_seg(user_id)}", _model(User), json=body)


def get_user(user_id: str) -> Call[User]:
    return Call("GET", f"/v1/users/{_seg(user_id)}", _model(User))


def enroll_totp(user_id: str) -> Call[TotpEnrollment]:
    return Call("POST", f"/v1/users/{_seg(user_id)}/factors/totp", _model(TotpEnrollment))


def enroll_sms(
    user_id: str, phone: str, region: str | None, idempotency_key: str | None = None
) -> Call[SmsEnrollment]:
    body: dict[str, Any] = {"phone": phone}
    if region:
        body["region"] = region
    return Call(
        "POST",
        f"/v1/users/{_seg(user_id)}/factors/sms",
        _model(SmsEnrollment),
        json=body,
        headers=idempotency_headers(idempotency_key),
    )


def register_push_device(
    user_id: str, *, device_name: str | None, platform: str, push_token: str, public_key: str
) -> Call[PushDevice]:
    body = {
        "device_name": device_name,
        "platform": platform,
        "push_token": push_token,
        "public_key": public_key,
    }
    return Call("POST", f"/v1/users/{_seg(user_id)}/factors/push", _model(PushDevice), json=body)


def activate_factor(user_id: str, factor_id: str, code: str) -> Call[Activation]:
    path = f"/v1/users/{_seg(user_id)}/factors/{_seg(factor_id)}/activate"
    return Call("POST", path, _model(Activation), json={"code": code})


def list_factors(user_id: str) -> Call[list[Factor]]:
    return Call("GET", f"/v1/users/{_seg(user_id)}/factors", _factors)


def delete_factor(user_id: str, factor_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/users/{_seg(user_id)}/factors/{_seg(factor_id)}", _nothing)


def generate_backup_codes(user_id: str) -> Call[BackupCodes]:
    return Call("POST", f"/v1/users/{_seg(user_id)}/backup-codes", _model(BackupCodes))


def backup_codes_file(user_id: str) -> Call[str]:
    return Call(
        "POST",
        f"/v1/users/{_seg(user_id)}/backup-codes",
        _text,
        headers={"Accept": "text/plain"},
    )


def reset_user(user_id: str, actor_id: str) -> Call[ResetResult]:
    return Call(
        "DELETE",
        f"/v1/users/{_seg(user_id)}/mfa",
        _model(ResetResult),
        params={"actor_id": actor_id},
    )


def get_firm_policy(firm_id: str) -> Call[FirmPolicy]:
    return Call("GET", f"/v1/firms/{_seg(firm_id)}/policy", _model(FirmPolicy))


def put_firm_policy(
    firm_id: str, *, actor_id: str, require_mfa: bool, allowed_factors: list[str] | None
) -> Call[FirmPolicy]:
    body = {"actor_id": actor_id, "require_mfa": require_mfa, "allowed_factors": allowed_factors}
    return Call("PUT", f"/v1/firms/{_seg(firm_id)}/policy", _model(FirmPolicy), json=body)


def invite_users(firm_id: str, *, actor_id: str, user_ids: list[str]) -> Call[Invitations]:
    body = {"actor_id": actor_id, "user_ids": user_ids}
    return Call("POST", f"/v1/firms/{_seg(firm_id)}/invitations", _model(Invitations), json=body)


def withdraw_invitation(firm_id: str, user_id: str, *, actor_id: str) -> Call[None]:
    return Call(
        "DELETE",
        f"/v1/firms/{_seg(firm_id)}/invitations/{_seg(user_id)}",
        _nothing,
        params={"actor_id": actor_id},
    )


def audit(user_id: str, limit: int, before: int | None) -> Call[AuditPage]:
    params: dict[str, Any] = {"limit": limit}
    if before is not None:
        params["before"] = before
    return Call("GET", f"/v1/users/{_seg(user_id)}/audit", _model(AuditPage), params=params)


# --- login ----------------------------------------------------------------------------------


def preauth(user_id: str, trusted_token: str | None) -> Call[Preauth]:
    body: dict[str, Any] = {"user_id": user_id}
    if trusted_token:
        body["trusted_token"] = trusted_token
    return Call("POST", "/v1/preauth", _model(Preauth), json=body)


def create_challenge(
    user_id: str,
    *,
    factor: FactorName,
    factor_id: str | None,
    context: RequestContext | None,
    code: str | None,
    remember_device: bool,
    idempotency_key: str | None = None,
) -> Call[Challenge]:
    body: dict[str, Any] = {"user_id": user_id, "factor": factor}
    if factor_id:
        body["factor_id"] = factor_id
    if context is not None:
        body["context"] = context.model_dump(exclude_none=True)
    if code is not None:
        body["code"] = code
        body["remember_device"] = remember_device
    return Call(
        "POST",
        "/v1/challenges",
        _model(Challenge),
        json=body,
        headers=idempotency_headers(idempotency_key),
    )


def get_challenge(challenge_id: str, wait: float | None) -> Call[Challenge]:
    if not wait or wait <= 0:
        return Call("GET", f"/v1/challenges/{_seg(challenge_id)}", _model(Challenge))
    wait = min(wait, MAX_WAIT_SECONDS)
    return Call(
        "GET",
        f"/v1/challenges/{_seg(challenge_id)}",
        _model(Challenge),
        params={"wait": wait},
        timeout=wait + LONG_POLL_MARGIN_SECONDS,
    )


def verify(challenge_id: str, code: str, remember_device: bool) -> Call[Verification]:
    return Call(
        "POST",
        f"/v1/challenges/{_seg(challenge_id)}/verify",
        _model(Verification),
        json={"code": code, "remember_device": remember_device},
    )


def verify_webauthn(
    challenge_id: str, credential: dict[str, Any], remember_device: bool
) -> Call[Verification]:
    return Call(
        "POST",
        f"/v1/challenges/{_seg(challenge_id)}/verify",
        _model(Verification),
        json={"credential": credential, "remember_device": remember_device},
    )


# --- passkeys and security keys ---------------------------------------------------------------


def webauthn_options(user_id: str, name: str | None) -> Call[WebAuthnOptions]:
    body = {} if name is None else {"name": name}
    return Call(
        "POST",
        f"/v1/users/{_seg(user_id)}/factors/webauthn/options",
        _model(WebAuthnOptions),
        json=body,
    )


def register_webauthn(
    user_id: str, registration_id: str, credential: dict[str, Any], name: str | None
) -> Call[WebAuthnRegistration]:
    body: dict[str, Any] = {"registration_id": registration_id, "credential": credential}
    if name is not None:
        body["name"] = name
    return Call(
        "POST",
        f"/v1/users/{_seg(user_id)}/factors/webauthn",
        _model(WebAuthnRegistration),
        json=body,
    )


def rename_factor(user_id: str, factor_id: str, name: str) -> Call[Factor]:
    return Call(
        "PATCH",
        f"/v1/users/{_seg(user_id)}/factors/{_seg(factor_id)}",
        _model(Factor),
        json={"name": name},
    )


def resend(challenge_id: str) -> Call[Challenge]:
    return Call("POST", f"/v1/challenges/{_seg(challenge_id)}/resend", _model(Challenge))


def revoke_trusted_sessions(user_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/users/{_seg(user_id)}/trusted-sessions", _nothing)


# --- mobile app -----------------------------------------------------------------------------


def push_response(
    *,
    challenge_id: str,
    device_id: str,
    decision: str,
    number: str | None,
    reason: str | None,
    timestamp: int,
    signature: str,
) -> Call[PushResponse]:
    body: dict[str, Any] = {
        "challenge_id": challenge_id,
        "device_id": device_id,
        "decision": decision,
        "timestamp": timestamp,
        "signature": signature,
    }
    if number is not None:
        body["number"] = number
    if reason is not None:
        body["reason"] = reason
    return Call("POST", "/v1/push/responses", _model(PushResponse), json=body)


def ready() -> Call[None]:
    return Call("GET", "/readyz", _nothing)
