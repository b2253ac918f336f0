"""Passkeys and security keys: registration options, registration, and renaming a factor.

The bodies carry the WebAuthn Level 3 JSON forms, relayed by the login backend from the
browser (`parseCreationOptionsFromJSON`, `credential.toJSON()`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from mfa_pipeline.api.deps import ApplicationDep, WebAuthnDep
from mfa_pipeline.api.routes.users import FactorIdPath, UserIdPath
from mfa_pipeline.api.schemas import (
    ErrorOut,
    FactorOut,
    RenameFactorBody,
    WebAuthnOptionsBody,
    WebAuthnOptionsOut,
    WebAuthnRegisterBody,
    WebAuthnRegistrationOut,
)
from mfa_pipeline.api.views import factor_out
from mfa_pipeline.domain.challenges import RequestContext

router = APIRouter(prefix="/v1/users", tags=["users"], responses={401: {"model": ErrorOut}})


def _context(request: Request, app: str) -> RequestContext:
    return RequestContext(user_agent=request.headers.get("user-agent"), application=app)


@router.post(
    "/{user_id}/factors/webauthn/options",
    response_model=WebAuthnOptionsOut,
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
def webauthn_options(
    user_id: UserIdPath, body: WebAuthnOptionsBody, webauthn: WebAuthnDep, _: ApplicationDep
) -> WebAuthnOptionsOut:
    """Creation options for a new passkey or security key; usable once, for 5 minutes."""
    start = webauthn.start(user_id=user_id, name=body.name)
    return WebAuthnOptionsOut(registration_id=start.registration_id, public_key=start.public_key)


@router.post(
    "/{user_id}/factors/webauthn",
    status_code=201,
    response_model=WebAuthnRegistrationOut,
    responses={
        400: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
    },
)
def webauthn_register(
    user_id: UserIdPath,
    body: WebAuthnRegisterBody,
    request: Request,
    webauthn: WebAuthnDep,
    app: ApplicationDep,
) -> WebAuthnRegistrationOut:
    """Verify the browser's new credential and store it; 400 `invalid_credential` with a reason."""
    credential = webauthn.register(
        user_id=user_id,
        registration_id=body.registration_id,
        credential=body.credential,
        name=body.name,
        context=_context(request, app),
    )
    return WebAuthnRegistrationOut(
        factor_id=credential.factor_id,
        status="active",
        name=credential.name,
        credential_id=credential.credential_id,
        transports=list(credential.transports),
        backup_eligible=credential.backup_eligible,
        backed_up=credential.backed_up,
    )


@router.patch(
    "/{user_id}/factors/{factor_id}",
    response_model=FactorOut,
    responses={404: {"model": ErrorOut}},
)
def rename_factor(
    user_id: UserIdPath,
    factor_id: FactorIdPath,
    body: RenameFactorBody,
    *,
    request: Request,
    webauthn: WebAuthnDep,
    app: ApplicationDep,
) -> FactorOut:
    """Rename a factor the user named: a passkey, a security key, a push device."""
    factor = webauthn.rename(
        user_id=user_id, factor_id=factor_id, name=body.name, context=_context(request, app)
    )
    return factor_out(factor)
