"""Push: the login backend registers a phone; the phone answers a push with a signature."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from mfa_pipeline.api.deps import ApplicationDep, PushAnswersDep, PushDevicesDep
from mfa_pipeline.api.idempotency import json_response
from mfa_pipeline.api.schemas import (
    ID_PATTERN,
    ErrorOut,
    PushEnrollBody,
    PushEnrollmentOut,
    PushResponseBody,
    PushResponseOut,
)
from mfa_pipeline.domain.challenges import RequestContext
from mfa_pipeline.services.push import answer_from_wire

router = APIRouter(tags=["push"])
UserIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


@router.post(
    "/v1/users/{user_id}/factors/push",
    status_code=201,
    response_model=PushEnrollmentOut,
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
    },
)
def register_push_device(
    user_id: UserIdPath,
    body: PushEnrollBody,
    request: Request,
    push_devices: PushDevicesDep,
    app: ApplicationDep,
) -> PushEnrollmentOut:
    """Register the mobile app's device; the same public key again refreshes its FCM token.

    Both answer 201 (contract) with the same ids; `refreshed` tells them apart.
    """
    context = RequestContext(user_agent=request.headers.get("user-agent"), application=app)
    registration = push_devices.register(
        user_id=user_id,
        device_name=body.device_name,
        platform=body.platform,
        push_token=body.push_token,
        public_key=body.public_key,
        context=context,
    )
    factor = registration.factor
    return PushEnrollmentOut(
        factor_id=factor.factor_id,
        status=factor.status.value,
        device_id=factor.factor_id,
        device_name=factor.label,
        platform=body.platform,
        refreshed=not registration.created,
    )


@router.post(
    "/v1/push/responses",
    response_model=PushResponseOut,
    responses={
        401: {"model": ErrorOut},
        409: {"model": ErrorOut},
        410: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)
async def push_response(body: PushResponseBody, push_answers: PushAnswersDep) -> Response:
    """The phone's answer. No API key: the device's Ed25519 signature authenticates it.

    Runs on the event loop, as `POST /v1/challenges` does (see that module): a few short
    calls, and the waiting login page is woken the sooner. The answer is serialized once
    here, not validated again against the response model.
    """
    answer = answer_from_wire(
        challenge_id=body.challenge_id,
        device_id=body.device_id,
        decision=body.decision,
        number=body.number,
        reason=body.reason,
        timestamp=body.timestamp,
        signature=body.signature,
    )
    status = push_answers.answer(answer)
    out = PushResponseOut(challenge_id=body.challenge_id, status=status.value)
    return json_response(200, out.model_dump_json())
