"""Administrators invite their firm's users to enable MFA; preauth shows the invitation.

Only an administrator of the firm with MFA enabled may invite (`FirmAdministrators`). Users who
are unknown, of another firm or already enrolled are skipped with a reason, never an error, so
one bad id does not refuse the rest. The invitations are stored in one transaction; the
`user.mfa_invited` events for the result webhook are queued after it commits.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.errors import InvalidRequestError, UnavailableError
from mfa_pipeline.domain.events import UserEvent
from mfa_pipeline.domain.invitations import (
    INVITED,
    MAX_USERS_PER_CALL,
    WITHDRAWN,
    Invitation,
    InvitationOutcome,
    Skipped,
    SkipReason,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mfa_pipeline.domain.challenges import RequestContext
    from mfa_pipeline.ports import Clock, EventPublisher, InvitationRepository
    from mfa_pipeline.services.administrators import FirmAdministrators
    from mfa_pipeline.services.audit import Auditor

log = structlog.get_logger(__name__)

# Audit events, on the invited user's trail (the actor is named in each).
MFA_INVITED = "mfa_invited"
MFA_INVITATION_WITHDRAWN = "mfa_invitation_withdrawn"


def _event(kind: str, invitation: Invitation, *, actor_id: str, at: float) -> UserEvent:
    suffix = "invited" if kind == INVITED else "withdrawn"
    return UserEvent(
        event_id=f"{invitation.invitation_id}:{suffix}",
        type=kind,
        user_id=invitation.user_id,
        firm_id=invitation.firm_id,
        actor_id=actor_id,
        occurred_at=at,
    )


class InvitationService:
    def __init__(
        self,
        *,
        invitations: InvitationRepository,
        administrators: FirmAdministrators,
        auditor: Auditor,
        publisher: EventPublisher,
        clock: Clock,
    ) -> None:
        self._invitations = invitations
        self._administrators = administrators
        self._auditor = auditor
        self._publisher = publisher
        self._clock = clock

    def invite(
        self,
        *,
        firm_id: str,
        actor_id: str,
        user_ids: Sequence[str],
        context: RequestContext | None = None,
    ) -> InvitationOutcome:
        """Invite the named users of the firm; a repeat keeps the first invitation (idempotent)."""
        if not user_ids:
            raise InvalidRequestError("Name at least one user to invite.", field="user_ids")
        if len(user_ids) > MAX_USERS_PER_CALL:
            raise InvalidRequestError(
                f"Invite at most {MAX_USERS_PER_CALL} users per call.", field="user_ids"
            )
        self._administrators.require(
            actor_id=actor_id, firm_id=firm_id, action=MFA_INVITED, context=context
        )
        wanted = list(dict.fromkeys(user_ids))  # order kept, repeats dropped
        candidates = self._invitations.candidates(wanted)
        already = self._invitations.open_among(wanted)
        now = self._clock.now()
        skipped: list[Skipped] = []
        invited: list[Invitation] = []
        new: list[Invitation] = []
        for user_id in wanted:
            candidate = candidates.get(user_id)
            if candidate is None:
                skipped.append(Skipped(user_id, SkipReason.UNKNOWN_USER))
            elif candidate.firm_id != firm_id:
                skipped.append(Skipped(user_id, SkipReason.NOT_IN_FIRM))
            elif candidate.enrolled:
                skipped.append(Skipped(user_id, SkipReason.ALREADY_ENROLLED))
            elif user_id in already:
                invited.append(already[user_id])
            else:
                invitation = Invitation(
                    invitation_id=f"inv_{secrets.token_urlsafe(16)}",
                    user_id=user_id,
                    firm_id=firm_id,
                    invited_by=actor_id,
                    invited_at=now,
                )
                new.append(invitation)
                invited.append(invitation)
        self._invitations.add_all(new)  # all or nothing; events only once it is stored
        for invitation in new:
            self._auditor.record(
                MFA_INVITED,
                user_id=invitation.user_id,
                actor_id=actor_id,
                firm_id=firm_id,
                context=context,
                outcome="ok",
            )
            self._announce(_event(INVITED, invitation, actor_id=actor_id, at=now))
        log.info(
            "mfa_invited",
            firm_id=firm_id,
            actor_id=actor_id,
            invited=len(new),
            repeated=len(invited) - len(new),
            skipped=len(skipped),
        )
        return InvitationOutcome(invited=invited, skipped=skipped)

    def withdraw(
        self,
        *,
        firm_id: str,
        actor_id: str,
        user_id: str,
        context: RequestContext | None = None,
    ) -> Invitation | None:
        """Withdraw the user's invitation; withdrawing one that is not open changes nothing."""
        self._administrators.require(
            actor_id=actor_id, firm_id=firm_id, action=MFA_INVITATION_WITHDRAWN, context=context
        )
        invitation = self._invitations.withdraw(firm_id, user_id)
        if invitation is None:
            return None
        now = self._clock.now()
        self._auditor.record(
            MFA_INVITATION_WITHDRAWN,
            user_id=user_id,
            actor_id=actor_id,
            firm_id=firm_id,
            context=context,
            outcome="ok",
        )
        self._announce(_event(WITHDRAWN, invitation, actor_id=actor_id, at=now))
        log.info("mfa_invitation_withdrawn", firm_id=firm_id, actor_id=actor_id, user_id=user_id)
        return invitation

    def open_for(self, *, user_id: str) -> Invitation | None:
        """The user's open invitation: none once they have an active factor."""
        return self._invitations.open_for(user_id)

    def _announce(self, event: UserEvent) -> None:
        # Stored and audited already: a broker outage must not turn the answer into a 503.
        try:
            self._publisher.publish(event)
        except UnavailableError:
            log.warning("webhook_not_queued", event_id=event.event_id, type=event.type)
