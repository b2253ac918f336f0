"""The SMS pumping defence: every SMS a request would cause is admitted here first.

Called when an SMS login challenge or an SMS enrollment is created and when a resend is asked
for, before anything is stored, so a refusal changes nothing. Phone numbers are decrypted only
here and in the delivery worker, and never logged: log lines name the country at most.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.adapters.phonenumbers_parser import sms_destination
from mfa_pipeline.domain.errors import InvalidPhoneError, RateLimitedError
from mfa_pipeline.domain.sms_spend import SmsLimitScope, SmsUnavailableError
from mfa_pipeline.services.verification import phone_context

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mfa_pipeline.domain.factors import Factor
    from mfa_pipeline.domain.sms_spend import SmsDestination, SmsSpendLimits
    from mfa_pipeline.ports import Clock, SecretBox, SmsSpendGuard

log = structlog.get_logger(__name__)

_MESSAGES = {
    SmsLimitScope.NUMBER: "Too many text messages were sent to this number recently",
    SmsLimitScope.PREFIX: "Too many text messages were sent to numbers like this one recently",
    SmsLimitScope.COUNTRY: "Too many text messages were sent to this country recently",
}


@dataclass(frozen=True, slots=True)
class SmsTicket:
    """One admitted SMS; handed back with `SmsSendGate.refund` when it is not sent after all."""

    destination: SmsDestination
    ticket: str


class SmsSendGate:
    def __init__(
        self,
        *,
        guard: SmsSpendGuard,
        secrets_box: SecretBox,
        clock: Clock,
        limits: SmsSpendLimits,
        allowed_regions: Iterable[str] = (),
        denied_regions: Iterable[str] = (),
    ) -> None:
        self._guard = guard
        self._secrets = secrets_box
        self._clock = clock
        self._limits = limits
        self._allowed = frozenset(r.strip().upper() for r in allowed_regions if r.strip())
        self._denied = frozenset(r.strip().upper() for r in denied_regions if r.strip())

    def admit_factor(self, factor: Factor) -> SmsTicket:
        """Admit one SMS to an enrolled factor's number (decrypted here, for the limits only)."""
        number = self._secrets.decrypt(factor.phone_ciphertext or "", context=phone_context(factor))
        return self.admit_number(number, user_id=factor.user_id)

    def admit_number(self, e164: str, *, user_id: str) -> SmsTicket:
        """Admit one SMS to `e164`, or raise the error the login backend should show.

        The region lists apply here too, not only at enrollment: a country denied after a
        pumping attack stops receiving codes at once, enrolled numbers included.
        """
        destination = sms_destination(e164)
        if destination.country in self._denied or (
            self._allowed and destination.country not in self._allowed
        ):
            log.warning(
                "sms_limited", user_id=user_id, limit="sms_region", country=destination.country
            )
            raise InvalidPhoneError(
                "We cannot send text messages to numbers in that country; "
                "use another method such as an authenticator app.",
                region=destination.country,
            )
        ticket = secrets.token_hex(8)
        admission = self._guard.admit(destination, ticket=ticket, now=self._clock.now())
        if admission.allowed:
            return SmsTicket(destination, ticket)
        wait = math.ceil(admission.retry_after)
        if admission.scope is SmsLimitScope.CIRCUIT:
            if admission.opened:
                # The alert: once per opening across every process (the store says who opened).
                log.error(
                    "sms_circuit_open",
                    outcome="alert",
                    breaker_per_minute=self._limits.breaker_per_minute,
                    cooldown_seconds=self._limits.breaker_cooldown_seconds,
                    country=destination.country,
                )
            raise SmsUnavailableError(
                "Text messages are paused for a few minutes because of unusual volume; "
                "use another method or try again later.",
                retry_after=wait,
            )
        scope = admission.scope or SmsLimitScope.NUMBER
        log.warning("sms_limited", user_id=user_id, limit=scope.value, country=destination.country)
        raise RateLimitedError(
            f"{_MESSAGES[scope]}; try again later or use another method.",
            retry_after=wait,
            limit=scope.value,
        )

    def refund(self, ticket: SmsTicket) -> None:
        self._guard.refund(ticket.destination, ticket=ticket.ticket)
