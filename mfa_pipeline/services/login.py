"""The login as the login backend sees it: what to ask for, then the answer and what comes with it.

Preauth combines the user's factors, the firm's policy, backup codes and trusted sessions; a
verified login may carry a "keep me logged in" token and a backup-codes warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from mfa_pipeline.domain.challenges import ChallengePurpose, ChallengeStatus, FactorType
from mfa_pipeline.domain.errors import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mfa_pipeline.domain.challenges import RequestContext, RequestedFactor
    from mfa_pipeline.domain.factors import Factor
    from mfa_pipeline.domain.invitations import Invitation
    from mfa_pipeline.ports import IdempotencyMark
    from mfa_pipeline.services.backup_codes import BackupCodeService, BackupCodeWarning
    from mfa_pipeline.services.challenges import ChallengeService, ChallengeView
    from mfa_pipeline.services.enrollment import EnrollmentService
    from mfa_pipeline.services.invitations import InvitationService
    from mfa_pipeline.services.policies import PolicyService
    from mfa_pipeline.services.trusted_sessions import TrustedSessionService, TrustedToken


class NextStep(StrEnum):
    AUTH = "auth"  # ask for one of `factors`
    ALLOW = "allow"  # a trusted session: no second factor this time
    ENROLL = "enroll"  # the firm requires MFA and the user has no factor it allows
    BYPASS = "bypass"  # no MFA for this user


@dataclass(frozen=True, slots=True)
class Preauth:
    next_step: NextStep
    # Active factors of types the firm allows.
    factors: list[Factor]
    # Whether unused backup codes may be offered next to `factors`.
    backup_codes: bool
    # With `bypass` only: an administrator's open invitation to enable MFA.
    invitation: Invitation | None = None


@dataclass(frozen=True, slots=True)
class LoginAnswer:
    """A challenge as the login backend sees it after an issue or a verification."""

    view: ChallengeView
    # Only on a verified login: the trusted-session token asked for with `remember_device`.
    trusted: TrustedToken | None = None
    # Only on a login verified by a backup code.
    backup_codes: BackupCodeWarning | None = None


class LoginService:
    def __init__(
        self,
        *,
        challenges: ChallengeService,
        enrollment: EnrollmentService,
        policies: PolicyService,
        backup_codes: BackupCodeService,
        trusted_sessions: TrustedSessionService,
        invitations: InvitationService,
    ) -> None:
        self._challenges = challenges
        self._enrollment = enrollment
        self._policies = policies
        self._backup_codes = backup_codes
        self._trusted = trusted_sessions
        self._invitations = invitations

    def preauth(self, *, user_id: str, trusted_token: str | None) -> Preauth:
        """What the login page should do next for this user."""
        try:
            view = self._enrollment.get_user(user_id=user_id)
        except NotFoundError:
            return Preauth(NextStep.BYPASS, factors=[], backup_codes=False)
        # Only factors the firm's policy allows are offered (`auto` skips the others too).
        active = self._policies.usable_factors(view.user, view.factors)
        backup_codes = bool(
            active
            and self._policies.allows(view.user, FactorType.BACKUP_CODE)
            and self._backup_codes.remaining(user_id=user_id) > 0
        )
        # A token of another user, forged, expired or revoked reads as no token at all.
        if self._trusted.is_trusted(user_id=user_id, token=trusted_token):
            step = NextStep.ALLOW
        elif self._policies.enrollment_required(view.user, view.factors):
            step = NextStep.ENROLL
        elif active:
            step = NextStep.AUTH
        else:  # no MFA: the login page may still pass on an administrator's invitation
            invitation = self._invitations.open_for(user_id=user_id)
            return Preauth(NextStep.BYPASS, factors=[], backup_codes=False, invitation=invitation)
        return Preauth(step, factors=active, backup_codes=backup_codes)

    def issue(
        self,
        *,
        user_id: str,
        factor: RequestedFactor,
        factor_id: str | None,
        context: RequestContext,
        code: str | None,
        remember_device: bool,
        idempotency: IdempotencyMark | None = None,
    ) -> LoginAnswer:
        """Start a second-factor check; a TOTP or backup code sent along is checked at once."""
        view = self._challenges.issue(
            user_id=user_id,
            factor=factor,
            factor_id=factor_id,
            context=context,
            code=code,
            idempotency=idempotency,
        )
        return self._answer(view, remember_device=remember_device)

    def verify(
        self,
        *,
        challenge_id: str,
        code: str | None,
        remember_device: bool,
        credential: Mapping[str, object] | None = None,
        api_application: str | None = None,
    ) -> LoginAnswer:
        """A code, or a passkey's assertion (`credential`), for the challenge.

        `api_application` is the verifying API key's: the audit and a trusted token name it.
        """
        view = self._challenges.verify(
            challenge_id=challenge_id,
            code=code,
            credential=credential,
            api_application=api_application,
        )
        return self._answer(view, remember_device=remember_device)

    def _answer(self, view: ChallengeView, *, remember_device: bool) -> LoginAnswer:
        challenge = view.challenge
        if (
            view.status is not ChallengeStatus.VERIFIED
            or challenge.purpose is not ChallengePurpose.LOGIN
        ):
            return LoginAnswer(view)
        warning = None
        if challenge.factor is FactorType.BACKUP_CODE:
            warning = self._backup_codes.warning_for(user_id=challenge.user_id)
        trusted = None
        if remember_device:
            trusted = self._trusted.issue(
                user_id=challenge.user_id,
                # Recorded under the API key's application, not a caller-supplied name.
                application=challenge.context.audited_application,
                challenge_id=challenge.challenge_id,
            )
        return LoginAnswer(view, trusted=trusted, backup_codes=warning)
