"""Firm-wide MFA policy: require MFA of every user, restrict the factor types they may use."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mfa_pipeline.api.deps import ApplicationDep, PoliciesDep
from mfa_pipeline.api.schemas import ID_PATTERN, ErrorOut, iso
from mfa_pipeline.domain.challenges import FactorType, RequestContext
from mfa_pipeline.domain.policies import FirmPolicy

router = APIRouter(prefix="/v1/firms", tags=["firms"], responses={401: {"model": ErrorOut}})
FirmIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
FactorName = Literal["webauthn", "totp", "sms", "push", "backup_code"]


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    actor_id: Annotated[str, StringConstraints(pattern=ID_PATTERN)] = Field(
        description="The administrator making the change: a user of this firm with MFA enabled."
    )
    require_mfa: bool = Field(description="Every user of the firm must enroll a factor.")
    allowed_factors: list[FactorName] | None = Field(
        default=None,
        max_length=5,
        description="Factor types the firm's users may enroll and log in with; "
        "empty or absent allows all of them.",
    )


class PolicyOut(BaseModel):
    firm_id: str
    require_mfa: bool
    allowed_factors: list[str] = Field(description="Empty: every factor type is allowed.")
    updated_at: str | None
    updated_by: str | None


def policy_out(policy: FirmPolicy) -> PolicyOut:
    return PolicyOut(
        firm_id=policy.firm_id,
        require_mfa=policy.require_mfa,
        allowed_factors=sorted(f.value for f in policy.allowed_factors),
        updated_at=iso(policy.updated_at),
        updated_by=policy.updated_by,
    )


@router.get("/{firm_id}/policy", response_model=PolicyOut)
def get_policy(firm_id: FirmIdPath, policies: PoliciesDep, _: ApplicationDep) -> PolicyOut:
    """The firm's MFA policy (a firm that never set one requires nothing, allows everything)."""
    return policy_out(policies.get(firm_id=firm_id))


@router.put(
    "/{firm_id}/policy",
    response_model=PolicyOut,
    responses={
        403: {"model": ErrorOut, "description": "`forbidden`: the actor is not of this firm"},
        409: {
            "model": ErrorOut,
            "description": "`actor_mfa_required`: the acting administrator has no active factor",
        },
        422: {"model": ErrorOut},
    },
)
def put_policy(
    firm_id: FirmIdPath,
    body: PolicyBody,
    request: Request,
    policies: PoliciesDep,
    app: ApplicationDep,
) -> PolicyOut:
    """Replace the firm's MFA policy. Audited on the acting administrator's trail."""
    policy = policies.put(
        firm_id=firm_id,
        actor_id=body.actor_id,
        require_mfa=body.require_mfa,
        allowed_factors=[FactorType(f) for f in dict.fromkeys(body.allowed_factors or [])],
        context=RequestContext(user_agent=request.headers.get("user-agent"), application=app),
    )
    return policy_out(policy)
