"""Sending SMS codes: called by the `sms` queue's worker, once per send sequence.

The task is acknowledged late, so it may run twice. A send is claimed in the store before the
provider is called and recorded before the task returns: a second run finds `sent` and does
nothing, or finds `sending` (the first worker died mid-call, so the provider may have taken it)
and marks the challenge failed instead of sending the same code again.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.challenges import (
    ChallengePurpose,
    ChallengeStatus,
    DeliveryStatus,
    FactorType,
)
from mfa_pipeline.domain.codes import code_digest, generate_code
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.domain.events import ChallengeFinished
from mfa_pipeline.ports import SmsPermanentError, SmsTransientError, Transition
from mfa_pipeline.services import audit
from mfa_pipeline.services.delivery_status import status_callback_url as callback_url_for
from mfa_pipeline.services.verification import phone_context
from mfa_pipeline.services.webhooks import announce_finished

if TYPE_CHECKING:
    from mfa_pipeline.domain.challenges import Challenge
    from mfa_pipeline.ports import (
        ChallengeStore,
        Clock,
        EventPublisher,
        FactorRepository,
        Metrics,
        SecretBox,
        SmsSender,
    )
    from mfa_pipeline.services.audit import Auditor

log = structlog.get_logger(__name__)


class DeliveryOutcome(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"  # this sequence was already sent: nothing to do
    SKIPPED = "skipped"  # the challenge ended, expired or was superseded
    RETRY = "retry"  # transient provider error: try again later
    FAILED = "failed"  # permanent: the challenge is marked failed


class SmsDeliveryService:
    def __init__(
        self,
        *,
        store: ChallengeStore,
        factors: FactorRepository,
        sender: SmsSender,
        secrets: SecretBox,
        publisher: EventPublisher,
        clock: Clock,
        code_ttl_seconds: int,
        status_callback_url: str | None = None,  # the base; each send adds its challenge
        auditor: Auditor,
        metrics: Metrics,
        in_flight_seconds: float = 0,
    ) -> None:
        self._store = store
        # Longer than any live send takes: a send begun more recently is another copy's.
        self._in_flight = in_flight_seconds
        self._metrics = metrics
        self._auditor = auditor
        self._factors = factors
        self._sender = sender
        self._secrets = secrets
        self._publisher = publisher
        self._clock = clock
        self._ttl = code_ttl_seconds
        self._status_callback = status_callback_url

    def deliver(
        self, *, challenge_id: str, seq: int, final_attempt: bool = False
    ) -> DeliveryOutcome:
        """Send the code of send sequence `seq`; `final_attempt` turns a transient error final."""
        bound = log.bind(challenge_id=challenge_id, seq=seq, factor="sms")
        challenge = self._store.get(challenge_id)
        if challenge is None or challenge.factor is not FactorType.SMS:
            bound.info("sms_skipped", outcome="not_found")
            return DeliveryOutcome.SKIPPED
        bound = bound.bind(user_id=challenge.user_id)
        code = generate_code()
        digest = code_digest(self._secrets.code_keys()[0], challenge_id, seq, code)
        claim = self._store.claim_delivery(
            challenge_id,
            seq,
            digest,
            now=self._clock.now(),
            ttl_seconds=self._ttl,
            in_flight_seconds=self._in_flight,
        )
        if claim.transition is Transition.IN_FLIGHT and not final_attempt:
            # A copy of this task (a redelivery) runs beside the one sending: look again later,
            # when the send has been recorded, or has stayed unrecorded long enough to be lost.
            bound.info("sms_skipped", outcome="in_flight")
            return DeliveryOutcome.RETRY
        if claim.transition is Transition.DUPLICATE:
            bound.info("sms_skipped", outcome="duplicate")
            return DeliveryOutcome.DUPLICATE
        if claim.transition in (Transition.INTERRUPTED, Transition.IN_FLIGHT):
            # The provider may hold the earlier attempt's code: never send a second one.
            return self._fail(challenge, seq, "interrupted", bound)
        if claim.transition is not Transition.DONE:
            bound.info("sms_skipped", outcome=claim.transition.value)
            return DeliveryOutcome.SKIPPED
        return self._send_claimed(challenge, seq, code, final_attempt=final_attempt, bound=bound)

    def _send_claimed(  # noqa: PLR0911 - one return per delivery outcome reads best
        self,
        challenge: Challenge,
        seq: int,
        code: str,
        *,
        final_attempt: bool,
        bound: structlog.stdlib.BoundLogger,
    ) -> DeliveryOutcome:
        """The send of `seq` is this task's: read the number, send, record the outcome."""
        challenge_id = challenge.challenge_id
        # Read only once the send is ours: a duplicate or stale task never touches the number.
        try:
            factor = self._factors.get_factor(challenge.user_id, challenge.factor_id or "")
        except UnavailableError:
            # Claimed but not sent: hand the send back (`retrying`), or the task's next run
            # would find it `sending`, take it for a send that may have left, and fail it.
            if final_attempt:
                return self._fail(challenge, seq, "store_unavailable", bound)
            return self._retry(challenge_id, seq, "store_unavailable", bound)
        if factor is None or factor.phone_ciphertext is None:
            return self._fail(challenge, seq, "factor_removed", bound)
        phone = self._secrets.decrypt(factor.phone_ciphertext, context=phone_context(factor))
        started = self._clock.now()
        try:
            receipt = self._sender.send(
                to=phone,
                body=sms_body(code, self._ttl),
                status_callback=(
                    callback_url_for(self._status_callback, challenge_id, seq)
                    if self._status_callback
                    else None
                ),
            )
        except SmsTransientError as exc:
            self._metrics.provider_error(channel="sms", provider_error_code=exc.code or "transient")
            if final_attempt:
                return self._fail(challenge, seq, exc.code or "transient", bound)
            return self._retry(challenge_id, seq, exc.code, bound)
        except SmsPermanentError as exc:
            self._metrics.provider_error(channel="sms", provider_error_code=exc.code or "rejected")
            return self._fail(challenge, seq, exc.code or "rejected", bound)
        try:
            self._store.record_delivery(
                challenge_id,
                seq,
                status=DeliveryStatus.SENT.value,
                now=self._clock.now(),
                provider_id=receipt.provider_id,
            )
        except UnavailableError:
            # The SMS is out and its code (stored by the claim) verifies; only the `sent` mark
            # is missing. Raising would rerun the task, find the send `sending`, and fail the
            # challenge under the user's code.
            bound.warning("sms_sent_unrecorded", provider_id=receipt.provider_id)
        # From the request of this send: the creation, or the resend that began sequence `seq`.
        requested_at = challenge.created_at
        if seq > 0 and challenge.last_resend_at is not None:
            requested_at = challenge.last_resend_at
        latency = max(0.0, self._clock.now() - requested_at)
        self._metrics.delivery_latency(channel="sms", seconds=latency)
        bound.info(
            "sms_sent",
            outcome="sent",
            provider_id=receipt.provider_id,
            latency_ms=round((self._clock.now() - challenge.created_at) * 1000, 1),
            delivery_latency_seconds=round(latency, 4),
            provider_ms=round((self._clock.now() - started) * 1000, 1),
        )
        return DeliveryOutcome.SENT

    def _retry(
        self,
        challenge_id: str,
        seq: int,
        error_code: str | None,
        bound: structlog.stdlib.BoundLogger,
    ) -> DeliveryOutcome:
        """Give the claimed send back: the task's next run claims it again and sends."""
        self._store.record_delivery(
            challenge_id,
            seq,
            status=DeliveryStatus.RETRYING.value,
            now=self._clock.now(),
            error_code=error_code,
        )
        bound.warning("sms_retrying", provider_error_code=error_code)
        return DeliveryOutcome.RETRY

    def _fail(
        self, challenge: Challenge, seq: int, error_code: str, bound: structlog.stdlib.BoundLogger
    ) -> DeliveryOutcome:
        result = self._store.record_delivery(
            challenge.challenge_id,
            seq,
            status=DeliveryStatus.FAILED.value,
            now=self._clock.now(),
            error_code=error_code,
            fail_challenge=True,
        )
        bound.warning("sms_failed", outcome="failed", provider_error_code=error_code)
        if result.transition is Transition.DONE and result.status is ChallengeStatus.FAILED:
            announce_failed_delivery(
                challenge,
                details={"error_code": error_code, "seq": seq},
                metrics=self._metrics,
                auditor=self._auditor,
                publisher=self._publisher,
            )
        return DeliveryOutcome.FAILED


def announce_failed_delivery(
    challenge: Challenge,
    *,
    details: dict[str, object],
    metrics: Metrics,
    auditor: Auditor,
    publisher: EventPublisher,
) -> None:
    """A challenge failed because no send could be made (SMS or push): count, audit, announce."""
    if challenge.purpose is ChallengePurpose.LOGIN:
        metrics.challenge_failed(
            factor=challenge.factor.value,
            application=challenge.context.application,
            reason=ChallengeStatus.FAILED.value,
        )
    auditor.record(
        audit.DELIVERY_FAILED,
        user_id=challenge.user_id,
        context=challenge.context,
        outcome="failed",
        factor=challenge.factor.value,
        factor_id=challenge.factor_id,
        challenge_id=challenge.challenge_id,
        details=details,
        best_effort=True,
    )
    announce_finished(
        publisher,
        ChallengeFinished(
            challenge.challenge_id,
            challenge.user_id,
            factor=challenge.factor,
            status=ChallengeStatus.FAILED,
            application=challenge.context.application,
        ),
    )


def sms_body(code: str, ttl_seconds: int) -> str:
    minutes = max(1, ttl_seconds // 60)
    unit = "minute" if minutes == 1 else "minutes"
    return f"Your verification code is {code}. It expires in {minutes} {unit}. Never share it."
