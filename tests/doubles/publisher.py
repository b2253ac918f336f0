"""The event publisher's test double."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfa_pipeline.ports import EventPublisher

if TYPE_CHECKING:
    from mfa_pipeline.domain.events import Event, UserEvent


class RecordingEventPublisher(EventPublisher):
    """Keeps events in a list: the in-memory twin for unit tests."""

    def __init__(self) -> None:
        self.events: list[Event | UserEvent] = []

    def publish(self, event: Event | UserEvent) -> None:
        self.events.append(event)
