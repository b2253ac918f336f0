"""Who may administer a firm's MFA: one check for every administrative call.

The contract: an administrative call (the firm's policy, a user's MFA reset, invitations)
names its actor; the actor must have `role: admin` in the same firm (403 `forbidden`) and MFA
enabled on their own account (409 `actor_mfa_required`). Anyone else in the firm holding a
colleague's password could otherwise reset that colleague's MFA and enroll a factor of their
own. Refusals are audited on the actor's trail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.errors import ActorMfaRequiredError, ForbiddenError
from mfa_pipeline.domain.factors import Role

if TYPE_CHECKING:
    from mfa_pipeline.domain.challenges import RequestContext
    from mfa_pipeline.domain.factors import User
    from mfa_pipeline.ports import FactorRepository
    from mfa_pipeline.services.audit import Auditor

log = structlog.get_logger(__name__)


class FirmAdministrators:
    def __init__(self, *, factors: FactorRepository, auditor: Auditor) -> None:
        self._factors = factors
        self._auditor = auditor

    def require(
        self,
        *,
        actor_id: str,
        firm_id: str | None,
        action: str,
        context: RequestContext | None = None,
    ) -> User:
        """The actor, if an administrator of `firm_id` with MFA enabled; else raise.

        `action` is the audit event of the call (e.g. `mfa_reset`): a refusal is recorded
        under it with the refusal's code as outcome.
        """
        actor, factors = self._factors.get_user_with_factors(actor_id)
        if (
            actor is None
            or firm_id is None
            or actor.firm_id != firm_id
            or actor.role is not Role.ADMIN
        ):
            self._refused(actor_id, firm_id, action, "forbidden", context)
            raise ForbiddenError("The acting user is not an administrator of this firm.")
        if not any(f.is_active for f in factors):
            self._refused(actor_id, firm_id, action, "actor_mfa_required", context)
            raise ActorMfaRequiredError(
                "Enable MFA on your own account before administering your firm's MFA."
            )
        return actor

    def _refused(
        self,
        actor_id: str,
        firm_id: str | None,
        action: str,
        outcome: str,
        context: RequestContext | None,
    ) -> None:
        log.warning(
            "admin_refused", actor_id=actor_id, firm_id=firm_id, action=action, outcome=outcome
        )
        self._auditor.record(
            action,
            user_id=actor_id,
            actor_id=actor_id,
            firm_id=firm_id,
            context=context,
            outcome=outcome,
            best_effort=True,
        )
