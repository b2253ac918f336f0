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

from mfa_pipeline.api.deps import ApplicationDep, ContainerDep, WatcherDep
from mfa_pipeline.api.idempotency import idempotent, json_response
from mfa_pipeline.api.login_extras import backup_code_factor, login_extras
from mfa_pipeline.api.schemas import (
    ChallengeOut,
    CreateChallengeBody,
    ErrorOut,
    PreauthBody,
    PreauthOut,
    VerifyBody,
    VerifyOut,
)
from mfa_pipeline.api.views import challenge_out, factor_out
from mfa_pipeline.domain.challenges import (
    ChallengeStatus,
    FactorType,
    RequestContext,
    RequestedFactor,
)
from mfa_pipeline.domain.errors import NotFoundError
from mfa_pipeline.ports import IdempotencyMark

router = APIRouter(tags=["login"], responses={401: {"model": ErrorOut}})
ChallengeIdPath = Annotated[str, Path(max_length=64)]


@router.post("/v1/preauth", response_model=PreauthOut)
def preauth(body: PreauthBody, c: ContainerDep, _: ApplicationDep) -> PreauthOut:
    """What the login page should do next for this user."""
    try:
        view = c.enrollment.get_user(user_id=body.user_id)
    except NotFoundError:
        return PreauthOut(result="bypass", factors=[])
    # Only factors the firm's policy allows are offered (`auto` skips the others too).
    active = c.policy_service.usable_factors(view.user, view.factors)
    factors = [factor_out(f) for f in active]
    if (
        active
        and c.policy_service.allows(view.user, FactorType.BACKUP_CODE)
        and c.backup_code_service.remaining(user_id=body.user_id) > 0
    ):
        factors.append(backup_code_factor())
    # A token of another user, forged, expired or revoked reads as no token at all.
    if c.trusted_session_service.is_trusted(user_id=body.user_id, token=body.trusted_token):
        return PreauthOut(result="allow", factors=factors)
    if c.policy_service.enrollment_required(view.user, view.factors):
        return PreauthOut(result="enroll", factors=factors)
    return PreauthOut(result="auth" if active else "bypass", factors=factors)


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
    body: CreateChallengeBody, request: Request, c: ContainerDep, app: ApplicationDep
) -> Response:
    """Start a second-factor check. SMS is queued for the workers; this answers at once.

    For TOTP the code may come along: the challenge is created and checked at once. With an
    `Idempotency-Key`, a repeat answers what the first request did and sends nothing.
    """
    context = RequestContext(
        ip=body.context.ip,
        user_agent=body.context.user_agent,
        application=body.context.application or app,
    )

    def run(mark: IdempotencyMark | None) -> Response:
        view = c.challenges.issue(
            user_id=body.user_id,
            factor=body.factor,
            factor_id=body.factor_id,
            context=context,
            code=body.code,
            idempotency=mark,
        )
        extras = login_extras(c, view, remember_device=body.remember_device)
        out = challenge_out(view).model_copy(update=extras)
        # Already a ChallengeOut: serialized once here rather than validated again by FastAPI.
        return json_response(201, out.model_dump_json())

    def created(challenge_id: str) -> Response:
        return json_response(
            201, challenge_out(c.challenges.resume(challenge_id)).model_dump_json()
        )

    create = functools.partial(
        idempotent, request, c, app, user_id=body.user_id, body=body, run=run, created=created
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
    c: ContainerDep,
    watcher: WatcherDep,
    _: ApplicationDep,
    wait: Annotated[
        float, Query(ge=0, le=30, description="Seconds to wait for a status change")
    ] = 0,
) -> ChallengeOut:
    if wait <= 0:
        return challenge_out(c.challenges.get(challenge_id))
    deadline = time.monotonic() + min(wait, c.settings.long_poll_max_seconds)
    while True:
        # Listening before reading: no change can slip between the read and the wait. One
        # read per pass: after a wake-up (or the deadline, or expiry) the next pass reads.
        async with watcher.watch(challenge_id) as changed:
            view = c.challenges.get(challenge_id)
            remaining = deadline - time.monotonic()
            if view.status is not ChallengeStatus.PENDING or remaining <= 0:
                return challenge_out(view)
            # Wake at the change, or at expiry (a pending challenge reads `expired` after it).
            until_expiry = view.challenge.expires_at - c.clock.now()
            timeout = max(0.0, min(remaining, until_expiry + 0.05))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed, timeout)


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
    challenge_id: ChallengeIdPath, body: VerifyBody, c: ContainerDep, _: ApplicationDep
) -> VerifyOut:
    verify = functools.partial(
        c.challenges.verify, challenge_id=challenge_id, code=body.code, credential=body.credential
    )
    # An assertion is a few short store calls and one signature check: inline, as creation is.
    # Codes keep the thread pool (a backup code is tens of milliseconds of argon2).
    inline = body.credential is not None and body.code is None
    view = verify() if inline else await run_in_threadpool(verify)
    extras = login_extras(c, view, remember_device=body.remember_device)
    return VerifyOut(challenge_id=challenge_id, status=view.status.value).model_copy(update=extras)


@router.post(
    "/v1/challenges/{challenge_id}/resend",
    status_code=202,
    response_model=ChallengeOut,
    responses={404: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
def resend_challenge(
    challenge_id: ChallengeIdPath, c: ContainerDep, _: ApplicationDep
) -> ChallengeOut:
    """A fresh SMS code; the old one stops working at once."""
    return challenge_out(c.challenges.resend(challenge_id=challenge_id))
