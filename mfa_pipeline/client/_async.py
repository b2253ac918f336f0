"""The asyncio client: for login backends on an event loop (FastAPI, aiohttp, Starlette)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Self

import httpx

from mfa_pipeline.client import _calls as calls
from mfa_pipeline.client.errors import (
    MfaApiError,
    MfaClientError,
    MfaConnectionError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from mfa_pipeline.client._calls import Call, RetryPolicy, T
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


class AsyncMfaClient:
    """Every call of the contract, over one pooled `httpx.AsyncClient`.

    The same methods as `MfaClient`, awaited; `async with AsyncMfaClient(url, api_key=KEY)`
    or `await aclose()`. Errors come back as the typed exceptions of `mfa_pipeline.client.errors`.
    `http` takes an `httpx.AsyncClient` of your own (base URL and auth already set: proxies, event
    hooks); `sleep` and `monotonic` are injectable, so tests can watch the retries' delays.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http or httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)
        self._retry = retry or calls.RetryPolicy()
        self._sleep = sleep
        self._monotonic = monotonic

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(call)
            except MfaClientError as error:
                delay = self._retry.delay(attempt, error)
                if delay is None:
                    raise
                await self._sleep(delay)

    async def _once(self, call: Call[T]) -> T:
        extra: dict[str, Any] = {} if call.timeout is None else {"timeout": call.timeout}
        try:
            response = await self._http.request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                headers=call.headers,
                **extra,
            )
        except httpx.ConnectError as exc:
            raise MfaConnectionError(f"cannot reach the MFA service: {exc}") from exc
        except httpx.TransportError as exc:
            if call.idempotent:  # the server runs it once however often it arrives
                raise MfaConnectionError(f"the MFA service did not answer: {exc!r}") from exc
            # The request may have arrived: surfaced, not retried (a POST must not run twice).
            raise MfaClientError(f"the MFA service did not answer: {exc!r}") from exc
        if response.is_success:
            return call.parse(response)
        raise calls.api_error(response)

    # --- users and enrollment ------------------------------------------------------------

    async def put_user(
        self, user_id: str, *, firm_id: str | None = None, role: str | None = None
    ) -> User:
        return await self._run(calls.put_user(user_id, firm_id, role))

    async def get_user(self, user_id: str) -> User:
        return await self._run(calls.get_user(user_id))

    async def enroll_totp(self, user_id: str) -> TotpEnrollment:
        return await self._run(calls.enroll_totp(user_id))

    async def enroll_sms(
        self,
        user_id: str,
        phone: str,
        *,
        region: str | None = None,
        idempotency_key: str | None = None,
    ) -> SmsEnrollment:
        """`idempotency_key`: yours to reuse across restarts; by default one per call."""
        return await self._run(calls.enroll_sms(user_id, phone, region, idempotency_key))

    async def register_push_device(
        self,
        user_id: str,
        *,
        platform: str,
        push_token: str,
        public_key: str,
        device_name: str | None = None,
    ) -> PushDevice:
        return await self._run(
            calls.register_push_device(
                user_id,
                device_name=device_name,
                platform=platform,
                push_token=push_token,
                public_key=public_key,
            )
        )

    async def activate_factor(self, user_id: str, factor_id: str, code: str) -> Activation:
        return await self._run(calls.activate_factor(user_id, factor_id, code))

    async def list_factors(self, user_id: str) -> list[Factor]:
        return await self._run(calls.list_factors(user_id))

    async def delete_factor(self, user_id: str, factor_id: str) -> None:
        await self._run(calls.delete_factor(user_id, factor_id))

    async def generate_backup_codes(self, user_id: str) -> BackupCodes:
        return await self._run(calls.generate_backup_codes(user_id))

    async def backup_codes_file(self, user_id: str) -> str:
        """A new set of backup codes as the service's printable text file."""
        return await self._run(calls.backup_codes_file(user_id))

    async def reset_user(self, user_id: str, *, actor_id: str) -> ResetResult:
        return await self._run(calls.reset_user(user_id, actor_id))

    async def get_firm_policy(self, firm_id: str) -> FirmPolicy:
        return await self._run(calls.get_firm_policy(firm_id))

    async def put_firm_policy(
        self,
        firm_id: str,
        *,
        actor_id: str,
        require_mfa: bool,
        allowed_factors: list[str] | None = None,
    ) -> FirmPolicy:
        return await self._run(
            calls.put_firm_policy(
                firm_id, actor_id=actor_id, require_mfa=require_mfa, allowed_factors=allowed_factors
            )
        )

    async def invite_users(
        self, firm_id: str, *, actor_id: str, user_ids: list[str]
    ) -> Invitations:
        """Invite users of the firm to enable MFA (the actor: an administrator with MFA)."""
        return await self._run(calls.invite_users(firm_id, actor_id=actor_id, user_ids=user_ids))

    async def withdraw_invitation(self, firm_id: str, user_id: str, *, actor_id: str) -> None:
        """Withdraw a user's invitation; withdrawing one that is not open is not an error."""
        await self._run(calls.withdraw_invitation(firm_id, user_id, actor_id=actor_id))

    async def audit(self, user_id: str, *, limit: int = 50, before: int | None = None) -> AuditPage:
        return await self._run(calls.audit(user_id, limit, before))

    # --- login -----------------------------------------------------------------------------

    async def preauth(self, user_id: str, *, trusted_token: str | None = None) -> Preauth:
        return await self._run(calls.preauth(user_id, trusted_token))

    async def create_challenge(
        self,
        user_id: str,
        *,
        factor: FactorName = "auto",
        factor_id: str | None = None,
        context: RequestContext | None = None,
        code: str | None = None,
        remember_device: bool = False,
        idempotency_key: str | None = None,
    ) -> Challenge:
        return await self._run(
            calls.create_challenge(
                user_id,
                factor=factor,
                factor_id=factor_id,
                context=context,
                code=code,
                remember_device=remember_device,
                idempotency_key=idempotency_key,
            )
        )

    async def get_challenge(self, challenge_id: str, *, wait: float | None = None) -> Challenge:
        """The challenge now, or (`wait` seconds, at most 30) as soon as its status changes."""
        return await self._run(calls.get_challenge(challenge_id, wait))

    # The same signature as the sync client's: `timeout` bounds a series of long-polls.
    async def wait_for_result(self, challenge_id: str, timeout: float) -> Challenge:  # noqa: ASYNC109
        """Long-poll until the challenge is final; `WaitTimeoutError` after `timeout` seconds."""
        deadline = self._monotonic() + timeout
        while True:
            remaining = deadline - self._monotonic()
            challenge = await self.get_challenge(challenge_id, wait=max(remaining, 0))
            if challenge.is_final:
                return challenge
            if deadline - self._monotonic() <= 0:
                raise WaitTimeoutError(challenge)

    async def verify(
        self, challenge_id: str, code: str, *, remember_device: bool = False
    ) -> Verification:
        return await self._run(calls.verify(challenge_id, code, remember_device))

    async def verify_webauthn(
        self, challenge_id: str, credential: dict[str, Any], *, remember_device: bool = False
    ) -> Verification:
        """Answer a `webauthn` challenge with the browser's assertion (`credential.toJSON()`)."""
        return await self._run(calls.verify_webauthn(challenge_id, credential, remember_device))

    # --- passkeys and security keys ------------------------------------------------------------

    async def webauthn_options(self, user_id: str, *, name: str | None = None) -> WebAuthnOptions:
        """Creation options to hand the browser; register its answer within 5 minutes."""
        return await self._run(calls.webauthn_options(user_id, name))

    async def register_webauthn(
        self,
        user_id: str,
        registration_id: str,
        credential: dict[str, Any],
        *,
        name: str | None = None,
    ) -> WebAuthnRegistration:
        """Store the browser's new credential (`credential.toJSON()` of `create()`)."""
        return await self._run(calls.register_webauthn(user_id, registration_id, credential, name))

    async def rename_factor(self, user_id: str, factor_id: str, name: str) -> Factor:
        return await self._run(calls.rename_factor(user_id, factor_id, name))

    async def resend(self, challenge_id: str) -> Challenge:
        return await self._run(calls.resend(challenge_id))

    async def revoke_trusted_sessions(self, user_id: str) -> None:
        await self._run(calls.revoke_trusted_sessions(user_id))

    # --- mobile app and operations -----------------------------------------------------------

    async def push_response(
        self,
        *,
        challenge_id: str,
        device_id: str,
        decision: str,
        timestamp: int,
        signature: str,
        number: str | None = None,
        reason: str | None = None,
    ) -> PushResponse:
        """The mobile app's signed answer to a push (needs no API key)."""
        return await self._run(
            calls.push_response(
                challenge_id=challenge_id,
                device_id=device_id,
                decision=decision,
                number=number,
                reason=reason,
                timestamp=timestamp,
                signature=signature,
            )
        )

    async def ready(self) -> bool:
        """True when the service's Redis and database answer (`/readyz`)."""
        try:
            await self._once(calls.ready())
        except MfaApiError:
            return False
        return True
