"""The numbers that govern challenges, gathered in one value built from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mfa_pipeline.domain.challenges import Lifetimes
from mfa_pipeline.domain.limits import RateLimit

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, slots=True)
class ChallengeRules:
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    # NIST SP 800-63B §5.2.2 asks for a limit on failed attempts; 5 per challenge, with the
    # per-user and per-IP windows below bounding guesses across challenges.
    max_attempts: int = 5
    max_resends: int = 3
    resend_interval_seconds: float = 30
    challenges_per_user: RateLimit = field(default_factory=lambda: RateLimit(10, 600))
    challenges_per_ip: RateLimit = field(default_factory=lambda: RateLimit(60, 600))
    verifications_per_user: RateLimit = field(default_factory=lambda: RateLimit(30, 600))
    verifications_per_ip: RateLimit = field(default_factory=lambda: RateLimit(120, 600))
    sms_max_retries: int = 5
    totp_issuer: str = "mfa-pipeline"
    # Per application (the API key's name): its own issuer instead of the deployment's.
    totp_issuers: Mapping[str, str] = field(default_factory=dict)

    def totp_issuer_for(self, application: str | None) -> str:
        """What the user's authenticator app shows for codes enrolled through `application`."""
        return self.totp_issuers.get(application or "", self.totp_issuer)
