"""What a verified login answer carries besides its status: a trusted token, a codes warning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mfa_pipeline.api.schemas import FactorOut, iso
from mfa_pipeline.domain.challenges import ChallengePurpose, ChallengeStatus, FactorType

if TYPE_CHECKING:
    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.services.challenges import ChallengeView


def login_extras(c: Container, view: ChallengeView, *, remember_device: bool) -> dict[str, Any]:
    """Fields to add to a verify answer (empty unless the challenge was just verified)."""
    challenge = view.challenge
    if (
        view.status is not ChallengeStatus.VERIFIED
        or challenge.purpose is not ChallengePurpose.LOGIN
    ):
        return {}
    extras: dict[str, Any] = {}
    if challenge.factor is FactorType.BACKUP_CODE:
        warning = c.backup_code_service.warning_for(user_id=challenge.user_id)
        extras["backup_codes_remaining"] = warning.remaining
        if warning.warning:
            extras["warning"] = warning.warning
    if remember_device:
        token = c.trusted_session_service.issue(
            user_id=challenge.user_id,
            application=challenge.context.application,
            challenge_id=challenge.challenge_id,
        )
        extras["trusted_token"] = token.token
        extras["trusted_until"] = iso(token.expires_at)
    return extras


def backup_code_factor() -> FactorOut:
    """How preauth lists backup codes among a user's factors (they are not a factor row)."""
    return FactorOut(
        factor_id="backup_code", type=FactorType.BACKUP_CODE.value, status="active", created_at=None
    )
