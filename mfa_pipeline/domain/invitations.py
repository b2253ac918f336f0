"""Invitations to enable MFA: an administrator asks, the user decides (nothing is required).

The help article's "invite or require": requiring is the firm policy; an invitation only makes
the login page suggest enrolling. It ends when the user enrolls any factor or an administrator
withdraws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# One call names at most this many users: a firm-wide invitation is paged by the caller, and a
# request stays one short transaction.
MAX_USERS_PER_CALL = 1000

INVITED = "user.mfa_invited"
WITHDRAWN = "user.mfa_invitation_withdrawn"


class SkipReason(StrEnum):
    UNKNOWN_USER = "unknown_user"
    NOT_IN_FIRM = "not_in_firm"
    ALREADY_ENROLLED = "already_enrolled"


@dataclass(frozen=True, slots=True)
class Invitation:
    invitation_id: str
    user_id: str
    firm_id: str
    invited_by: str
    invited_at: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """What an invitation needs to know of a named user."""

    user_id: str
    firm_id: str | None
    enrolled: bool


@dataclass(frozen=True, slots=True)
class Skipped:
    user_id: str
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class InvitationOutcome:
    invited: list[Invitation]
    skipped: list[Skipped]
