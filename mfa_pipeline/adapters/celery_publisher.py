"""Events onto Celery queues. Payloads are ids and numbers only, never codes or phone numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import kombu.exceptions
import redis
import structlog

from mfa_pipeline.adapters.celery_app import (
    DELIVER_PUSH,
    DELIVER_SMS,
    DELIVER_WEBHOOK,
    QUEUE_OF,
)
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.domain.events import (
    ChallengeFinished,
    Event,
    PushDeliveryRequested,
    SmsDeliveryRequested,
    UserEvent,
)
from mfa_pipeline.ports import EventPublisher

if TYPE_CHECKING:
    from celery import Celery

log = structlog.get_logger(__name__)

# What `send_task` raises when the broker cannot be reached (kombu wraps most of it).
BROKER_DOWN = (kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError)


class CeleryEventPublisher(EventPublisher):
    def __init__(self, app: Celery, *, result_webhooks: bool = False) -> None:
        self._app = app
        self._webhooks = result_webhooks

    def publish(self, event: Event | UserEvent) -> None:
        """Send the event's task; a broker that cannot take it is `UnavailableError` (a 503)."""
        try:
            self._send(event)
        except BROKER_DOWN as exc:
            log.warning("broker_unavailable", error=type(exc).__name__)
            raise UnavailableError("The task queue is unavailable; try again.") from exc

    def _send(self, event: Event | UserEvent) -> None:
        if isinstance(event, SmsDeliveryRequested):
            self._app.send_task(
                DELIVER_SMS, args=[event.challenge_id, event.seq], queue=QUEUE_OF[DELIVER_SMS]
            )
        elif isinstance(event, PushDeliveryRequested):
            self._app.send_task(
                DELIVER_PUSH, args=[event.challenge_id], queue=QUEUE_OF[DELIVER_PUSH]
            )
        elif isinstance(event, ChallengeFinished) and self._webhooks:
            payload = {
                "challenge_id": event.challenge_id,
                "user_id": event.user_id,
                "factor": event.factor.value,
                "status": event.status.value,
                "application": event.application,
            }
            self._app.send_task(DELIVER_WEBHOOK, args=[payload], queue=QUEUE_OF[DELIVER_WEBHOOK])
        elif isinstance(event, UserEvent) and self._webhooks:
            user_payload: dict[str, str | float] = {
                "id": event.event_id,
                "type": event.type,
                "user_id": event.user_id,
                "firm_id": event.firm_id,
                "actor_id": event.actor_id,
                "occurred_at": event.occurred_at,
            }
            self._app.send_task(
                DELIVER_WEBHOOK, args=[user_payload], queue=QUEUE_OF[DELIVER_WEBHOOK]
            )
        # Other events have no consumer yet beyond the structured log the services write.
