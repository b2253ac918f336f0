"""Login: preauth, challenges, verification, resend, long-poll.

`POST /v1/challenges` runs on the event loop rather than in the thread pool, except for backup
codes (argon2 is deliberately costly CPU work). The login path is a handful of short calls to
Redis and the database, all with timeouts; on a small machine the thread hop and the GIL
hand-offs between pool threads cost more CPU than the work itself (the benchmarks measure
both). A process then serves one login at a time, as a classic sync worker does, and the API
scales with `--workers`. The long-poll's reads (one HGETALL each) run inline too, so a waiting
page is answered as soon as the change lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from mfa_pipeline.api.deps import (
    ApplicationDep,
    ChallengesDep,
    ClockDep,
    ConfigDep,
    LoginDep,
    ServicesDep,
    WatcherDep,
)
from mfa_pipeline.api.idempotency import idempotent, json_response
from mfa_pipeline.api.schemas import (
    ChallengeOut,
    CreateChallengeBody,
    ErrorOut,
    InvitedPreauthOut,
    PreauthBody,
    PreauthOut,
    VerifyBody,
    VerifyOut,
)
from mfa_pipeline.api.views import challenge_out, login_challenge_out, preauth_out, verify_out
from mfa_pipeline.domain.challenges import (
    ChallengeStatus,
    RequestContext,
    RequestedFactor,
)
from mfa_pipeline.ports import IdempotencyMark
from mfa_pipeline.services.challenges import ChallengeView

router = APIRouter(tags=["login"], responses={401: {"model": ErrorOut}})
ChallengeIdPath = Annotated[str, Path(max_length=64)]


@router.post("/v1/preauth", response_model=InvitedPreauthOut | PreauthOut)
def preauth(body: PreauthBody, login: LoginDep, _: ApplicationDep) -> PreauthOut:
    """What the login page should do next for this user."""
    return preauth_out(login.preauth(user_id=body.user_id, trusted_token=body.trusted_token))


@router.post(
    "/v1/challenges",
    status_code=201,
    response_model=ChallengeOut,
    responses={
        400: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)
async def create_challenge(
    body: CreateChallengeBody,
    *,
    request: Request,
    services: ServicesDep,
    app: ApplicationDep,
) -> Response:
    """Start a second-factor check. SMS is queued for the workers; this answers at once.

    For TOTP the code may come along: the challenge is created and checked at once. With an
    `Idempotency-Key`, a repeat answers what the first request did and sends nothing.
    """
    context = RequestContext(
        ip=body.context.ip,
        user_agent=body.context.user_agent,
        application=body.context.application or app,
        api_application=app,
    )

    def run(mark: IdempotencyMark | None) -> Response:
        answer = services.login.issue(
            user_id=body.user_id,
            factor=body.factor,
            factor_id=body.factor_id,
            context=context,
            code=body.code,
            remember_device=body.remember_device,
            idempotency=mark,
        )
        # Already a ChallengeOut: serialized once here rather than validated again by FastAPI.
        return json_response(201, login_challenge_out(answer).model_dump_json())

    def created(challenge_id: str) -> Response:
        resumed = services.challenges.resume(challenge_id)
        return json_response(201, challenge_out(resumed).model_dump_json())

    create = functools.partial(
        idempotent,
        request,
        services.idempotency,
        app,
        user_id=body.user_id,
        body=body,
        run=run,
        created=created,
    )
    if body.factor is RequestedFactor.BACKUP_CODE:
        return await run_in_threadpool(create)
    return create()


@router.get(
    "/v1/challenges/{challenge_id}",
    response_model=ChallengeOut,
    responses={404: {"model": ErrorOut}},
)
async def get_challenge(
    challenge_id: ChallengeIdPath,
    *,
    challenges: ChallengesDep,
    watcher: WatcherDep,
    clock: ClockDep,
    config: ConfigDep,
    _: ApplicationDep,
    wait: Annotated[
        float, Query(ge=0, le=30, description="Seconds to wait for a status change")
    ] = 0,
) -> Response:
    """A challenge as it is now; with `wait`, once its status changes (or the wait runs out).

    The answer is serialized here, once, rather than validated again against the response
    model: the login page polls this once per login and again on every change.
    """
    if wait <= 0:
        return _challenge_json(challenges.get(challenge_id))
    deadline = time.monotonic() + min(wait, config.long_poll_max_seconds)
    while True:
        # Listening before reading: no change can slip between the read and the wait. One
        # read per pass: after a wake-up (or the deadline, or expiry) the next pass reads.
        async with watcher.watch(challenge_id) as changed:
            view = challenges.get(challenge_id)
            remaining = deadline - time.monotonic()
            if view.status is not ChallengeStatus.PENDING or remaining <= 0:
                return _challenge_json(view)
            # Wake at the change, or at expiry (a pending challenge reads `expired` after it).
            until_expiry = view.challenge.expires_at - clock.now()
            timeout = max(0.0, min(remaining, until_expiry + 0.05))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed, timeout)


def _challenge_json(view: ChallengeView) -> Response:
    return json_response(200, challenge_out(view).model_dump_json())


@router.post(
    "/v1/challenges/{challenge_id}/verify",
    response_model=VerifyOut,
    responses={
        400: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        410: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)
async def verify_challenge(
    challenge_id: ChallengeIdPath, body: VerifyBody, login: LoginDep, app: ApplicationDep
) -> Response:
    verify = functools.partial(
        login.verify,
        challenge_id=challenge_id,
        code=body.code,
        credential=body.credential,
        remember_device=body.remember_device,
        api_application=app,
    )
    # An assertion is a few short store calls and one signature check: inline, as creation is.
    # Codes keep the thread pool (a backup code is tens of milliseconds of argon2).
    inline = body.credential is not None and body.code is None
    answer = verify() if inline else await run_in_threadpool(verify)
    # Already a VerifyOut: serialized once here rather than validated again by FastAPI.
    return json_response(200, verify_out(answer).model_dump_json())


@router.post(
    "/v1/challenges/{challenge_id}/resend",
    status_code=202,
    response_model=ChallengeOut,
    responses={404: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
def resend_challenge(
    challenge_id: ChallengeIdPath, challenges: ChallengesDep, _: ApplicationDep
) -> ChallengeOut:
    """A fresh SMS code; the old one stops working at once."""
    return challenge_out(challenges.resend(challenge_id=challenge_id))
