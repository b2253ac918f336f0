"""Users and factor enrollment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from mfa_pipeline.api.deps import (
    ApplicationDep,
    BackupCodesDep,
    ClockDep,
    EnrollmentDep,
    IdempotencyDep,
    PoliciesDep,
    WebAuthnDep,
)
from mfa_pipeline.api.idempotency import idempotent, json_response
from mfa_pipeline.api.schemas import (
    ID_PATTERN,
    ActivateBody,
    ActivateOut,
    ErrorOut,
    FactorOut,
    PutUserBody,
    SmsEnrollBody,
    SmsEnrollmentOut,
    TotpEnrollmentOut,
    UserOut,
)
from mfa_pipeline.api.views import factor_out, user_out
from mfa_pipeline.domain.challenges import FactorType, RequestContext
from mfa_pipeline.domain.factors import Role
from mfa_pipeline.ports import IdempotencyMark
from mfa_pipeline.services.enrollment import SmsEnrollment

if TYPE_CHECKING:
    from mfa_pipeline.services.backup_codes import BackupCodeService
    from mfa_pipeline.services.enrollment import UserView
    from mfa_pipeline.services.policies import PolicyService

router = APIRouter(prefix="/v1/users", tags=["users"], responses={401: {"model": ErrorOut}})
UserIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
FactorIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


def _user_answer(
    view: UserView, policies: PolicyService, backup_codes: BackupCodeService, now: float
) -> UserOut:
    required = policies.enrollment_required(view.user, view.factors)
    remaining = backup_codes.remaining(user_id=view.user.user_id)
    return user_out(view, backup_codes_remaining=remaining, now=now).model_copy(
        update={"enrollment_required": required}
    )


@router.put("/{user_id}", response_model=UserOut, responses={422: {"model": ErrorOut}})
def put_user(
    user_id: UserIdPath,
    body: PutUserBody,
    request: Request,
    *,
    enrollment: EnrollmentDep,
    policies: PoliciesDep,
    backup_codes: BackupCodesDep,
    clock: ClockDep,
    app: ApplicationDep,
) -> UserOut:
    """Create or update a user record (idempotent); a field left out keeps its value.

    `firm_id` is required to create. A change of firm or role is audited.
    """
    view = enrollment.put_user(
        user_id=user_id,
        firm_id=body.firm_id,
        role=Role(body.role) if body.role is not None else None,
        context=RequestContext(user_agent=request.headers.get("user-agent"), application=app),
    )
    return _user_answer(view, policies, backup_codes, clock.now())


@router.get("/{user_id}", response_model=UserOut, responses={404: {"model": ErrorOut}})
def get_user(
    user_id: UserIdPath,
    enrollment: EnrollmentDep,
    policies: PoliciesDep,
    backup_codes: BackupCodesDep,
    clock: ClockDep,
    _: ApplicationDep,
) -> UserOut:
    view = enrollment.get_user(user_id=user_id)
    return _user_answer(view, policies, backup_codes, clock.now())


@router.post(
    "/{user_id}/factors/totp",
    status_code=201,
    response_model=TotpEnrollmentOut,
    responses={403: {"model": ErrorOut}},
)
def enroll_totp(
    user_id: UserIdPath, request: Request, enrollment: EnrollmentDep, app: ApplicationDep
) -> TotpEnrollmentOut:
    """A pending authenticator factor; the secret appears in this answer only."""
    context = RequestContext(user_agent=request.headers.get("user-agent"), application=app)
    enrolled = enrollment.enroll_totp(user_id=user_id, context=context)
    return TotpEnrollmentOut(
        factor_id=enrolled.factor.factor_id,
        status=enrolled.factor.status.value,
        secret=enrolled.secret,
        otpauth_uri=enrolled.otpauth_uri,
        qr_svg=enrolled.qr_svg,
    )


@router.post(
    "/{user_id}/factors/sms",
    status_code=201,
    response_model=SmsEnrollmentOut,
    responses={403: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def enroll_sms(
    user_id: UserIdPath,
    body: SmsEnrollBody,
    *,
    request: Request,
    enrollment: EnrollmentDep,
    idempotency: IdempotencyDep,
    app: ApplicationDep,
) -> Response:
    """A pending SMS factor; a code is sent to the number to confirm it.

    With an `Idempotency-Key`, a repeat answers what the first request did and sends nothing.
    """
    context = RequestContext(ip=None, user_agent=request.headers.get("user-agent"), application=app)

    def run(mark: IdempotencyMark | None) -> Response:
        enrolled = enrollment.enroll_sms(
            user_id=user_id, phone=body.phone, region=body.region, context=context, idempotency=mark
        )
        return json_response(201, sms_enrollment_out(enrolled).model_dump_json())

    def created(challenge_id: str) -> Response:
        enrolled = enrollment.sms_enrollment_of(user_id=user_id, challenge_id=challenge_id)
        return json_response(201, sms_enrollment_out(enrolled).model_dump_json())

    return idempotent(
        request, idempotency, app, user_id=user_id, body=body, run=run, created=created
    )


def sms_enrollment_out(enrolled: SmsEnrollment) -> SmsEnrollmentOut:
    return SmsEnrollmentOut(
        factor_id=enrolled.factor.factor_id,
        status=enrolled.factor.status.value,
        phone_e164=enrolled.phone.e164,
        phone_display=enrolled.phone.international,
        phone_national=enrolled.phone.national,
        region=enrolled.phone.region,
        challenge_id=enrolled.challenge_id,
    )


@router.post("/{user_id}/factors/{factor_id}/activate", response_model=ActivateOut)
def activate_factor(
    user_id: UserIdPath,
    factor_id: FactorIdPath,
    body: ActivateBody,
    *,
    request: Request,
    enrollment: EnrollmentDep,
    app: ApplicationDep,
) -> ActivateOut:
    context = RequestContext(user_agent=request.headers.get("user-agent"), application=app)
    factor = enrollment.activate(
        user_id=user_id, factor_id=factor_id, code=body.code, context=context
    )
    return ActivateOut(factor_id=factor.factor_id, status=factor.status.value)


@router.get("/{user_id}/factors", response_model=list[FactorOut])
def list_factors(
    user_id: UserIdPath, enrollment: EnrollmentDep, webauthn: WebAuthnDep, _: ApplicationDep
) -> list[FactorOut]:
    factors = enrollment.list_factors(user_id=user_id)
    if not any(f.type is FactorType.WEBAUTHN for f in factors):
        return [factor_out(f) for f in factors]
    credentials = {w.factor_id: w for w in webauthn.credentials(user_id=user_id)}
    return [factor_out(f, credentials.get(f.factor_id)) for f in factors]


@router.delete("/{user_id}/factors/{factor_id}", status_code=204)
async def delete_factor(
    user_id: UserIdPath,
    factor_id: FactorIdPath,
    request: Request,
    enrollment: EnrollmentDep,
    app: ApplicationDep,
) -> Response:
    context = RequestContext(user_agent=request.headers.get("user-agent"), application=app)
    await run_in_threadpool(
        enrollment.delete_factor, user_id=user_id, factor_id=factor_id, context=context
    )
    return Response(status_code=204)
