"""Expiring due challenges: run periodically on the `sweeps` queue, safe on several workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.challenges import ChallengeStatus, FactorType
from mfa_pipeline.domain.events import ChallengeFinished
from mfa_pipeline.ports import NullMetrics
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
        auditor: Auditor | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics or NullMetrics()
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
            if self._auditor is not None:
                self._auditor.record(
                    audit.CHALLENGE_EXPIRED,
                    user_id=item.user_id,
                    application=item.application,
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
