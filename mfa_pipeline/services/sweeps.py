"""Periodic work on the `sweeps` queue, safe on several workers.

It expires due challenges, and publishes again the deliveries a dead worker took with it: a
worker killed as a whole (OOM, a lost host) takes the messages it held, which a Redis broker
hands back only after its visibility timeout, and RabbitMQ once it notices the
connection is gone. The store knows which sends have not moved for a while (queued and never
claimed, claimed and never finished); publishing them again is safe, as the delivery claim
lets one copy send and turns the others into duplicates (or fails a send that may have left).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.challenges import ChallengeStatus, FactorType
from mfa_pipeline.domain.events import (
    ChallengeFinished,
    PushDeliveryRequested,
    SmsDeliveryRequested,
)
from mfa_pipeline.services import audit
from mfa_pipeline.services.webhooks import announce_finished

if TYPE_CHECKING:
    from mfa_pipeline.ports import ChallengeStore, Clock, EventPublisher, Metrics
    from mfa_pipeline.services.audit import Auditor

log = structlog.get_logger(__name__)


class SweepService:
    def __init__(
        self,
        *,
        store: ChallengeStore,
        publisher: EventPublisher,
        clock: Clock,
        batch_size: int,
        auditor: Auditor,
        metrics: Metrics,
        stale_delivery_seconds: float = 20,
        retry_grace_seconds: float = 60,
    ) -> None:
        self._store = store
        self._stale = stale_delivery_seconds
        # A retry waits up to its backoff cap before it claims again: not stale before that.
        self._retry_grace = retry_grace_seconds
        self._metrics = metrics
        self._auditor = auditor
        self._publisher = publisher
        self._clock = clock
        self._batch = batch_size

    def sweep(self) -> int:
        """Expire what is due now; return how many expired. Each batch is one atomic script."""
        expired = self._store.sweep(now=self._clock.now(), batch_size=self._batch)
        for item in expired:
            log.info(
                "challenge_expired",
                challenge_id=item.challenge_id,
                user_id=item.user_id,
                factor=item.factor,
                application=item.application,
                outcome="expired",
            )
            self._metrics.challenge_expired(factor=item.factor, application=item.application)
            self._auditor.record(
                audit.CHALLENGE_EXPIRED,
                user_id=item.user_id,
                application=item.api_application or item.application,
                outcome="expired",
                factor=item.factor,
                challenge_id=item.challenge_id,
                best_effort=True,
            )
            announce_finished(
                self._publisher,
                ChallengeFinished(
                    item.challenge_id,
                    item.user_id,
                    factor=FactorType(item.factor),
                    status=ChallengeStatus.EXPIRED,
                    application=item.application,
                ),
            )
        return len(expired)

    def redeliver_stale(self) -> int:
        """Publish again each send that stopped moving; return how many were published."""
        stale = self._store.stale_deliveries(
            now=self._clock.now(),
            stale_seconds=self._stale,
            retry_grace_seconds=self._retry_grace,
            batch_size=self._batch,
        )
        for item in stale:
            log.warning(
                "delivery_republished",
                challenge_id=item.challenge_id,
                user_id=item.user_id,
                factor=item.factor,
                seq=item.seq,
            )
            if item.factor == FactorType.SMS.value:
                self._publisher.publish(
                    SmsDeliveryRequested(item.challenge_id, item.user_id, seq=item.seq)
                )
            elif item.factor == FactorType.PUSH.value:
                self._publisher.publish(PushDeliveryRequested(item.challenge_id, item.user_id))
        return len(stale)
