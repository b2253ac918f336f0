"""Administrators invite their firm's users to enable MFA, and withdraw invitations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mfa_pipeline.api.deps import ApplicationDep, InvitationsDep
from mfa_pipeline.api.schemas import ID_PATTERN, ErrorOut, UserId
from mfa_pipeline.domain.challenges import RequestContext
from mfa_pipeline.domain.invitations import MAX_USERS_PER_CALL

router = APIRouter(prefix="/v1/firms", tags=["invitations"], responses={401: {"model": ErrorOut}})
FirmIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
_REFUSALS: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "`forbidden`: the actor is not an administrator"},
    409: {"model": ErrorOut, "description": "`actor_mfa_required`: the actor has no factor"},
    422: {"model": ErrorOut},
}


class InviteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    actor_id: Annotated[str, StringConstraints(pattern=ID_PATTERN)] = Field(
        description="The administrator inviting: of this firm, with MFA enabled."
    )
    user_ids: list[UserId] = Field(
        min_length=1,
        max_length=MAX_USERS_PER_CALL,
        description=f"Users to invite, 1 to {MAX_USERS_PER_CALL}; repeats count once.",
    )


class SkippedOut(BaseModel):
    user_id: str
    reason: str = Field(description="`unknown_user`, `not_in_firm` or `already_enrolled`.")


class InvitationsOut(BaseModel):
    invited: list[str] = Field(description="Users whose invitation is open (new or repeated).")
    skipped: list[SkippedOut]


def _context(request: Request, application: str) -> RequestContext:
    return RequestContext(user_agent=request.headers.get("user-agent"), application=application)


@router.post(
    "/{firm_id}/invitations", status_code=201, response_model=InvitationsOut, responses=_REFUSALS
)
def invite(
    firm_id: FirmIdPath,
    body: InviteBody,
    request: Request,
    invitations: InvitationsDep,
    app: ApplicationDep,
) -> InvitationsOut:
    """Invite users of the firm to enable MFA (preauth then answers `bypass` with `invited`)."""
    outcome = invitations.invite(
        firm_id=firm_id,
        actor_id=body.actor_id,
        user_ids=body.user_ids,
        context=_context(request, app),
    )
    return InvitationsOut(
        invited=[i.user_id for i in outcome.invited],
        skipped=[SkippedOut(user_id=s.user_id, reason=s.reason.value) for s in outcome.skipped],
    )


@router.delete("/{firm_id}/invitations/{user_id}", status_code=204, responses=_REFUSALS)
def withdraw(  # noqa: PLR0917 - FastAPI passes path, query and dependencies by name
    firm_id: FirmIdPath,
    user_id: Annotated[str, Path(pattern=ID_PATTERN)],
    actor_id: Annotated[str, Query(pattern=ID_PATTERN)],
    request: Request,
    invitations: InvitationsDep,
    app: ApplicationDep,
) -> Response:
    """Withdraw the user's invitation; 204 as well when there was none (idempotent)."""
    invitations.withdraw(
        firm_id=firm_id, actor_id=actor_id, user_id=user_id, context=_context(request, app)
    )
    return Response(status_code=204)
