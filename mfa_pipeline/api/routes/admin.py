"""Administration of one user's MFA: the reset after a lost device, and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from mfa_pipeline.api.deps import AdminDep, ApplicationDep, AuditorDep, EnrollmentDep
from mfa_pipeline.api.schemas import ID_PATTERN, MAX_SQL_INT, ErrorOut, iso
from mfa_pipeline.domain.audit import AuditEvent
from mfa_pipeline.domain.challenges import RequestContext
from mfa_pipeline.services.audit import MAX_PAGE

router = APIRouter(
    prefix="/v1/users", tags=["administration"], responses={401: {"model": ErrorOut}}
)
UserIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


class ResetOut(BaseModel):
    user_id: str
    factors_removed: int
    backup_codes_removed: int
    trusted_sessions_revoked: int


class AuditEventOut(BaseModel):
    id: int
    event: str = Field(description="e.g. factor_enrolled, challenge_verified, mfa_reset")
    created_at: str | None
    user_id: str | None
    firm_id: str | None
    actor_id: str | None
    application: str | None = Field(description="The application whose API key acted")
    outcome: str | None
    factor: str | None
    factor_id: str | None
    challenge_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


class AuditPageOut(BaseModel):
    user_id: str
    events: list[AuditEventOut] = Field(description="Newest first")
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )


def _event_out(e: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        id=e.id or 0,
        event=e.event,
        created_at=iso(e.created_at),
        user_id=e.user_id,
        firm_id=e.firm_id,
        actor_id=e.actor_id,
        application=e.application,
        outcome=e.outcome,
        factor=e.factor,
        factor_id=e.factor_id,
        challenge_id=e.challenge_id,
        ip=e.ip,
        user_agent=e.user_agent,
        details=e.details,
    )


@router.delete(
    "/{user_id}/mfa",
    response_model=ResetOut,
    responses={404: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)
def reset_mfa(
    user_id: UserIdPath,
    request: Request,
    admin: AdminDep,
    app: ApplicationDep,
    actor_id: Annotated[
        str, Query(pattern=ID_PATTERN, description="The administrator: a user of the same firm")
    ],
) -> ResetOut:
    """An administrator's reset of a user who lost their device.

    Removes every factor, the backup codes and the trusted sessions ("keep me logged in");
    the audit trail is kept and records the reset with the actor and the application.
    Answers 200 with what was removed.
    """
    result = admin.reset_user(
        user_id=user_id,
        actor_id=actor_id,
        context=RequestContext(user_agent=request.headers.get("user-agent"), application=app),
    )
    return ResetOut(
        user_id=result.user_id,
        factors_removed=result.factors_removed,
        backup_codes_removed=result.backup_codes_removed,
        trusted_sessions_revoked=result.trusted_sessions_revoked,
    )


@router.get("/{user_id}/audit", response_model=AuditPageOut, responses={404: {"model": ErrorOut}})
def user_audit(
    user_id: UserIdPath,
    enrollment: EnrollmentDep,
    auditor: AuditorDep,
    _: ApplicationDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_SQL_INT, description="An `id` from the previous page")
    ] = None,
) -> AuditPageOut:
    """The user's MFA events, newest first. Rows never hold a code, secret or phone number."""
    enrollment.require_user(user_id)
    events = auditor.for_user(user_id=user_id, limit=limit, before=before)
    next_before = events[-1].id if len(events) == limit else None
    return AuditPageOut(
        user_id=user_id, events=[_event_out(e) for e in events], next_before=next_before
    )
