"""Push approval: number matching, the signed answer's canonical form, fatigue limits.

Number matching (NIST SP 800-63B 5.1.3.3 asks that an out-of-band approval be bound to the
session it approves): the browser shows two digits, the phone offers three numbers and the
user picks the one on the screen, so an approval tapped without looking fails.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum

# Contract and issue: a push lives 2 minutes; a signed answer is accepted within 60 s of the
# server clock; at most 3 pending push challenges per user and 10 per hour; "not me" refuses
# new pushes for 15 minutes.
TIMESTAMP_WINDOW_SECONDS = 60
MAX_PENDING_PER_USER = 3
MAX_PER_HOUR = 10
HOUR_SECONDS = 3600
NOT_ME_BLOCK_SECONDS = 15 * 60
NOT_ME = "not_me"


class Decision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


def new_number_match() -> str:
    """The two digits the browser shows (10-99: no leading zero to misread)."""
    return str(10 + secrets.randbelow(90))


def number_choices(right: str) -> list[str]:
    """Three distinct two-digit numbers in random order, `right` among them."""
    choices = {right}
    while len(choices) < 3:  # noqa: PLR2004 - three choices, as the phone shows them
        choices.add(new_number_match())
    ordered = sorted(choices)
    # Fisher-Yates with `secrets`: the right answer's position must not be guessable.
    for i in range(len(ordered) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        ordered[i], ordered[j] = ordered[j], ordered[i]
    return ordered


def canonical_answer(
    challenge_id: str,
    device_id: str,
    decision: str,
    number: str | None,
    timestamp: int,
    *,
    reason: str | None,
) -> bytes:
    """The bytes the device signs (contract).

    `challenge_id|device_id|decision|number|timestamp|reason`: the reason is signed so that a
    "not me" can be neither added to a replayed deny nor stripped in transit.
    """
    fields = (challenge_id, device_id, decision, number or "", str(timestamp), reason or "")
    return "|".join(fields).encode()


@dataclass(frozen=True, slots=True)
class PushAnswer:
    """A device's answer to a push challenge, as received (signature already decoded)."""

    challenge_id: str
    device_id: str
    decision: Decision
    number: str | None
    reason: str | None
    timestamp: int
    signature: bytes

    @property
    def fraud_reported(self) -> bool:
        return self.decision is Decision.DENY and self.reason == NOT_ME

    def signed_bytes(self) -> bytes:
        return canonical_answer(
            self.challenge_id,
            self.device_id,
            self.decision.value,
            self.number,
            self.timestamp,
            reason=self.reason,
        )


def timestamp_fresh(timestamp: int, now: float) -> bool:
    return abs(now - timestamp) <= TIMESTAMP_WINDOW_SECONDS
