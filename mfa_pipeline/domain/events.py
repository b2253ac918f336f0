"""Events: what happened, in the past tense. Payloads are ids and primitives, never secrets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mfa_pipeline.domain.challenges import ChallengeStatus, FactorType


@dataclass(frozen=True, slots=True)
class Event:
    challenge_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class SmsDeliveryRequested(Event):
    """A code must be sent: on creation and on each resend (`seq` tells them apart)."""

    seq: int


@dataclass(frozen=True, slots=True)
class PushDeliveryRequested(Event):
    """A push challenge must reach the user's phones."""


@dataclass(frozen=True, slots=True)
class ChallengeIssued(Event):
    factor: FactorType


@dataclass(frozen=True, slots=True)
class ChallengeFinished(Event):
    """A challenge reached a final status: verified, approved, denied, locked, failed or expired."""

    factor: FactorType
    status: ChallengeStatus
    application: str | None = None


@dataclass(frozen=True, slots=True)
class UserEvent:
    """Something that happened to a user's MFA outside a challenge, for the result webhook.

    `event_id` is stable: a redelivery carries the same one, so receivers deduplicate by it.
    """

    event_id: str
    type: str
    user_id: str
    firm_id: str
    actor_id: str
    occurred_at: float
