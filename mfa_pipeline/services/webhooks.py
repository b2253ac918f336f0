"""The result webhook: the login backend is told when a challenge reaches a final state.

An alternative to long-polling: a worker on the `webhooks` queue POSTs one JSON body per final
status to `MFA_RESULT_WEBHOOK_URL`, signed with HMAC-SHA256 under
`MFA_RESULT_WEBHOOK_SECRET`. The `X-MFA-Signature: t=<unix seconds>,v1=<hex>` header signs
`<t>.<body>`, so a receiver checks the signature in constant time and refuses old timestamps
(replays). Delivery is at least once: the body's `id` is the same on every retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog

from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.ports import WebhookError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mfa_pipeline.domain.events import ChallengeFinished
    from mfa_pipeline.ports import Clock, EventPublisher, WebhookSender

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-MFA-Signature"


class WebhookOutcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


def announce_finished(publisher: EventPublisher, event: ChallengeFinished) -> None:
    """Queue a final status for the webhook; a broker outage must not undo the answer.

    The outcome is already stored and the long-poll sees it: a login whose code was accepted
    must not read 503 because the webhook's queue was down. The miss is logged instead.
    """
    try:
        publisher.publish(event)
    except UnavailableError:
        log.warning(
            "webhook_not_queued", challenge_id=event.challenge_id, status=event.status.value
        )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float, tolerance: int = 300
) -> bool:
    """For receivers (and tests): the signature matches and is at most `tolerance` s old."""
    parts = dict(p.partition("=")[::2] for p in header.split(","))
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    expected = sign(secret, timestamp, body)
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, header)


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ResultWebhooks:
    def __init__(self, *, url: str, secret: str, sender: WebhookSender, clock: Clock) -> None:
        self._url = url
        self._secret = secret
        self._sender = sender
        self._clock = clock

    def deliver(
        self,
        *,
        challenge_id: str,
        user_id: str,
        factor: str,
        status: str,
        application: str | None,
        final_attempt: bool = False,
    ) -> WebhookOutcome:
        body = {
            "id": f"{challenge_id}:{status}",
            "type": "challenge.finished",
            "challenge_id": challenge_id,
            "user_id": user_id,
            "factor": factor,
            "status": status,
            "application": application,
        }
        bound = log.bind(challenge_id=challenge_id, user_id=user_id, outcome=status)
        return self._post(body, bound, final_attempt=final_attempt)

    def deliver_user_event(
        self,
        *,
        event_id: str,
        type: str,  # noqa: A002 - the field's name in the body
        user_id: str,
        firm_id: str,
        actor_id: str,
        occurred_at: float,
        final_attempt: bool = False,
    ) -> WebhookOutcome:
        """A user event (`user.mfa_invited`, ...): same signature, same at-least-once `id`."""
        body = {
            "id": event_id,
            "type": type,
            "user_id": user_id,
            "firm_id": firm_id,
            "actor_id": actor_id,
            "occurred_at": iso_utc(occurred_at),
        }
        bound = log.bind(event_id=event_id, user_id=user_id, outcome=type)
        return self._post(body, bound, final_attempt=final_attempt)

    def _post(
        self, payload: Mapping[str, str | None], bound: Any, *, final_attempt: bool
    ) -> WebhookOutcome:
        now = int(self._clock.now())
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, now, body),
        }
        try:
            self._sender.post(self._url, body, headers)
        except WebhookError as exc:
            if exc.retryable and not final_attempt:
                bound.warning("webhook_retrying", error_code=exc.code)
                return WebhookOutcome.RETRY
            bound.warning("webhook_failed", error_code=exc.code)
            return WebhookOutcome.FAILED
        bound.info("webhook_sent")
        return WebhookOutcome.SENT
