"""Trusted sessions ("keep me logged in for a week"): revoking them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from mfa_pipeline.api.deps import ApplicationDep, EnrollmentDep, TrustedSessionsDep
from mfa_pipeline.api.schemas import ID_PATTERN, ErrorOut

router = APIRouter(prefix="/v1/users", tags=["users"], responses={401: {"model": ErrorOut}})
UserIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


@router.delete("/{user_id}/trusted-sessions", status_code=204, responses={404: {"model": ErrorOut}})
def revoke_trusted_sessions(
    user_id: UserIdPath,
    enrollment: EnrollmentDep,
    trusted_sessions: TrustedSessionsDep,
    app: ApplicationDep,
) -> Response:
    """End every "keep me logged in" token of the user: the next login asks for MFA again."""
    enrollment.require_user(user_id)
    trusted_sessions.revoke_all(user_id=user_id, reason="revoked", application=app)
    return Response(status_code=204)
