"""Events onto Celery queues. Payloads are ids and numbers only, never codes or phone numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.events import Event, SmsDeliveryRequested
from mfa_pipeline.ports import EventPublisher

if TYPE_CHECKING:
    from celery import Celery

log = structlog.get_logger(__name__)

# Task names are the contract between the API and the workers; `workers/tasks.py` registers them.
DELIVER_SMS = "mfa.deliver_sms"
SWEEP_EXPIRED = "mfa.sweep_expired"


class CeleryEventPublisher(EventPublisher):
    def __init__(self, app: Celery) -> None:
        self._app = app

    def publish(self, event: Event) -> None:
        if isinstance(event, SmsDeliveryRequested):
            self._app.send_task(DELIVER_SMS, args=[event.challenge_id, event.seq], queue="sms")
        # Other events have no consumer yet beyond the structured log the services write.


class RecordingEventPublisher(EventPublisher):
    """Keeps events in a list: the in-memory twin for unit tests."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)
