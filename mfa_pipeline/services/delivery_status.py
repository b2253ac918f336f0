"""Delivery reports: Twilio tells us, after the send, whether an SMS reached the phone.

Each SMS is sent with its own status callback URL, `MFA_PUBLIC_URL` +
`/v1/providers/twilio/status?challenge_id=...&seq=...`. Twilio signs that URL, query included,
so the challenge and send sequence named in it are as authentic as the report itself, and the
store finds the challenge by its id: no message-SID index is needed, and the one script that
applies the report touches a single challenge's keys (one Redis Cluster slot).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode

import structlog

from mfa_pipeline.domain.challenges import DeliveryStatus
from mfa_pipeline.domain.errors import ForbiddenError
from mfa_pipeline.ports import Transition

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mfa_pipeline.ports import ChallengeStore, Clock, Metrics, WebhookVerifier

log = structlog.get_logger(__name__)

# Twilio's message statuses that say something about delivery. `accepted`, `queued`,
# `sending` and `scheduled` come before `sent` and add nothing to what the worker recorded.
TWILIO_STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
}
# Twilio's error codes are numbers (30003: unreachable handset); anything else is not stored.
_MAX_ERROR_CODE_DIGITS = 8


class ReportOutcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"  # authentic, but about nothing current: stale, repeated, unknown


def status_callback_url(base: str, challenge_id: str, seq: int) -> str:
    """The callback URL of one send: the challenge and sequence ride along, signed by Twilio."""
    return f"{base}?{urlencode({'challenge_id': challenge_id, 'seq': seq})}"


class DeliveryStatusService:
    def __init__(
        self,
        *,
        store: ChallengeStore,
        verifier: WebhookVerifier,
        clock: Clock,
        callback_base: str | None,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._verifier = verifier
        self._clock = clock
        self._base = callback_base
        self._metrics = metrics

    def twilio_status(
        self, *, query: str, form: Mapping[str, str], signature: str | None
    ) -> ReportOutcome:
        """Apply one status callback; `ForbiddenError` unless Twilio signed exactly this call.

        The URL checked is the configured public one, never the Host the request came with: a
        proxy in front changes the latter, and a forger controls it.
        """
        if self._base is None or not signature:
            log.warning("provider_callback_refused", provider="twilio", reason="unsigned")
            raise ForbiddenError("This callback is not signed by the provider.")
        url = f"{self._base}?{query}" if query else self._base
        if not self._verifier.verify(url=url, params=form, signature=signature):
            log.warning("provider_callback_refused", provider="twilio", reason="bad_signature")
            raise ForbiddenError("This callback is not signed by the provider.")
        target = parse_qs(query)
        challenge_id = (target.get("challenge_id") or [""])[0]
        seq_text = (target.get("seq") or [""])[0]
        status = TWILIO_STATUSES.get(form.get("MessageStatus") or form.get("SmsStatus") or "")
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        bound = log.bind(challenge_id=challenge_id, factor="sms", provider="twilio")
        if status is None or not sid or not seq_text.isdigit():
            bound.info("sms_status_reported", outcome=ReportOutcome.IGNORED.value)
            return ReportOutcome.IGNORED
        error_code = _error_code(form.get("ErrorCode"))
        result = self._store.record_provider_status(
            challenge_id,
            int(seq_text),
            provider_id=sid,
            status=status.value,
            now=self._clock.now(),
            error_code=error_code,
        )
        applied = result.transition is Transition.DONE
        bound.info(
            "sms_status_reported",
            seq=int(seq_text),
            status=status.value,
            provider_error_code=error_code,
            outcome=ReportOutcome.APPLIED.value if applied else ReportOutcome.IGNORED.value,
            reason=None if applied else result.transition.value,
        )
        if not applied:
            return ReportOutcome.IGNORED
        self._metrics.delivery_reported(channel="sms", status=status.value)
        if error_code is not None:
            self._metrics.provider_error(channel="sms", provider_error_code=error_code)
        return ReportOutcome.APPLIED


def _error_code(value: str | None) -> str | None:
    if value and value.isascii() and value.isdigit() and len(value) <= _MAX_ERROR_CODE_DIGITS:
        return value
    return None
