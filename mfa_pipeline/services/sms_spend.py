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

from mfa_pipeline.domain.errors import InvalidPhoneError, RateLimitedError
from mfa_pipeline.domain.sms_spend import SmsBreaker, SmsLimitScope, SmsUnavailableError
from mfa_pipeline.services.verification import phone_context

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mfa_pipeline.domain.factors import Factor
    from mfa_pipeline.domain.sms_spend import SmsDestination, SmsSpendLimits
    from mfa_pipeline.ports import Clock, PhoneNumbers, SecretBox, SmsSpendGuard

log = structlog.get_logger(__name__)

_MESSAGES = {
    SmsLimitScope.NUMBER: "Too many text messages were sent to this number recently",
    SmsLimitScope.PREFIX: "Too many text messages were sent to numbers like this one recently",
    SmsLimitScope.COUNTRY: "Too many text messages were sent to this country recently",
}
_PAUSED = {
    SmsBreaker.SCOPED: "Text messages to numbers in this country are paused",
    SmsBreaker.GLOBAL: "Text messages are paused",
}


@dataclass(frozen=True, slots=True)
class SmsTicket:
    """One admitted SMS; handed back with `SmsSendGate.refund` when it is not sent after all."""

    destination: SmsDestination
    ticket: str
    application: str | None = None


class SmsSendGate:
    def __init__(
        self,
        *,
        guard: SmsSpendGuard,
        secrets_box: SecretBox,
        clock: Clock,
        limits: SmsSpendLimits,
        phones: PhoneNumbers,
        allowed_regions: Iterable[str] = (),
        denied_regions: Iterable[str] = (),
        allow_non_geographic: bool = False,
    ) -> None:
        self._guard = guard
        self._phones = phones
        self._secrets = secrets_box
        self._clock = clock
        self._limits = limits
        self._allowed = frozenset(r.strip().upper() for r in allowed_regions if r.strip())
        self._denied = frozenset(r.strip().upper() for r in denied_regions if r.strip())
        self._allow_non_geographic = allow_non_geographic

    def admit_factor(self, factor: Factor, *, application: str | None) -> SmsTicket:
        """Admit one SMS to an enrolled factor's number (decrypted here, for the limits only)."""
        number = self._secrets.decrypt(factor.phone_ciphertext or "", context=phone_context(factor))
        return self.admit_number(number, user_id=factor.user_id, application=application)

    def admit_number(self, e164: str, *, user_id: str, application: str | None) -> SmsTicket:
        """Admit one SMS to `e164`, or raise the error the login backend should show.

        The region lists apply here too, not only at enrollment: a country denied after a
        pumping attack stops receiving codes at once, enrolled numbers included.
        """
        destination = self._phones.destination(e164)
        if destination.non_geographic and not self._allow_non_geographic:
            log.warning(
                "sms_limited",
                user_id=user_id,
                limit="sms_non_geographic",
                country=destination.country,
            )
            raise InvalidPhoneError(
                "We do not send text messages to satellite or other non-geographic numbers "
                "(calling codes such as +881 and +882); use a mobile number of a country or "
                "another method such as an authenticator app.",
                reason="non_geographic",
            )
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
        admission = self._guard.admit(
            destination, ticket=ticket, now=self._clock.now(), application=application
        )
        if admission.allowed:
            return SmsTicket(destination, ticket, application)
        wait = math.ceil(admission.retry_after)
        if admission.scope is SmsLimitScope.CIRCUIT:
            breaker = admission.breaker or SmsBreaker.GLOBAL
            if admission.opened:
                # The alert: once per opening across every process (the store says who opened).
                log.error(
                    "sms_circuit_open",
                    outcome="alert",
                    breaker=breaker.value,
                    application=application,
                    breaker_per_minute=(
                        self._limits.breaker_per_minute
                        if breaker is SmsBreaker.GLOBAL
                        else self._limits.breaker_scoped_per_minute
                    ),
                    cooldown_seconds=self._limits.breaker_cooldown_seconds,
                    country=destination.country,
                )
            raise SmsUnavailableError(
                f"{_PAUSED[breaker]} for a few minutes because of unusual volume; "
                "use another method or try again later.",
                retry_after=wait,
                breaker=breaker.value,
            )
        scope = admission.scope or SmsLimitScope.NUMBER
        log.warning("sms_limited", user_id=user_id, limit=scope.value, country=destination.country)
        raise RateLimitedError(
            f"{_MESSAGES[scope]}; try again later or use another method.",
            retry_after=wait,
            limit=scope.value,
        )

    def refund(self, ticket: SmsTicket) -> None:
        self._guard.refund(ticket.destination, ticket=ticket.ticket, application=ticket.application)
