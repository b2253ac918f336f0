"""Domain objects → response bodies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfa_pipeline.api.schemas import (
    ChallengeOut,
    DeliveryOut,
    FactorOut,
    InvitedPreauthOut,
    PreauthOut,
    UserOut,
    VerifyOut,
    iso,
)
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.factors import Factor, masked_phone

if TYPE_CHECKING:
    from mfa_pipeline.domain.webauthn import WebAuthnCredential
    from mfa_pipeline.services.challenges import ChallengeView
    from mfa_pipeline.services.enrollment import UserView
    from mfa_pipeline.services.login import LoginAnswer, Preauth


def factor_out(factor: Factor, credential: WebAuthnCredential | None = None) -> FactorOut:
    out = FactorOut(
        factor_id=factor.factor_id,
        type=factor.type.value,
        status=factor.status.value,
        created_at=iso(factor.created_at),
        activated_at=iso(factor.activated_at),
        phone_masked=masked_phone(factor.phone_last2),
        device_name=factor.label if factor.type is FactorType.PUSH else None,
        platform=factor.platform,
        name=factor.label if factor.type is FactorType.WEBAUTHN else None,
    )
    if credential is None:
        return out
    return out.model_copy(
        update={
            "credential_id": credential.credential_id,
            "transports": list(credential.transports),
            "backup_eligible": credential.backup_eligible,
            "backed_up": credential.backed_up,
            "last_used_at": iso(credential.last_used_at),
        }
    )


def user_out(view: UserView, *, backup_codes_remaining: int = 0, now: float = 0.0) -> UserOut:
    user = view.user
    return UserOut(
        user_id=user.user_id,
        firm_id=user.firm_id,
        role=user.role.value,
        locked_until=iso(user.locked_until) if user.code_factors_locked(now) else None,
        mfa_enabled=view.mfa_enabled,
        factors=[factor_out(f) for f in view.factors],
        backup_codes_remaining=backup_codes_remaining,
        enrollment_required=False,
    )


def challenge_out(view: ChallengeView) -> ChallengeOut:
    c = view.challenge
    d = c.delivery
    return ChallengeOut(
        challenge_id=c.challenge_id,
        user_id=c.user_id,
        factor=c.factor.value,
        factor_id=c.factor_id,
        status=view.status.value,
        created_at=iso(c.created_at),
        expires_at=iso(c.expires_at),
        attempts_remaining=c.attempts_remaining,
        delivery=DeliveryOut(
            status=d.status.value,
            attempts=d.attempts,
            provider_id=d.provider_id,
            error_code=d.error_code,
            sent_at=iso(d.sent_at),
            updated_at=iso(d.updated_at),
        ),
        number_match=c.number_match,
        fraud_reported=c.fraud_reported,
        public_key=view.public_key,
        purpose=c.purpose.value,
    )


# How preauth lists backup codes among a user's factors (they are not a factor row).
BACKUP_CODE_FACTOR = FactorOut(
    factor_id="backup_code", type=FactorType.BACKUP_CODE.value, status="active", created_at=None
)


def preauth_out(preauth: Preauth) -> PreauthOut:
    factors = [factor_out(f) for f in preauth.factors]
    if preauth.backup_codes:
        factors.append(BACKUP_CODE_FACTOR)
    if preauth.invitation is not None:
        return InvitedPreauthOut(
            result=preauth.next_step.value,
            factors=factors,
            invited_by=preauth.invitation.invited_by,
            invited_at=iso(preauth.invitation.invited_at) or "",
        )
    return PreauthOut(result=preauth.next_step.value, factors=factors)


def _login_fields(answer: LoginAnswer) -> dict[str, str | int | None]:
    """What a verified login carries besides its status: a trusted token, a codes warning."""
    trusted, codes = answer.trusted, answer.backup_codes
    return {
        "trusted_token": trusted.token if trusted else None,
        "trusted_until": iso(trusted.expires_at) if trusted else None,
        "warning": codes.warning if codes else None,
        "backup_codes_remaining": codes.remaining if codes else None,
    }


def login_challenge_out(answer: LoginAnswer) -> ChallengeOut:
    return challenge_out(answer.view).model_copy(update=_login_fields(answer))


def verify_out(answer: LoginAnswer) -> VerifyOut:
    return VerifyOut(
        challenge_id=answer.view.challenge.challenge_id,
        status=answer.view.status.value,
        **_login_fields(answer),
    )
