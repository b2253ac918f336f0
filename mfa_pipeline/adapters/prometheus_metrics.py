"""`Metrics` on prometheus-client, summed over every API and worker process of a deployment.

With `PROMETHEUS_MULTIPROC_DIR` set (the CLI sets it, see `prometheus_dir.py`), each process
writes its values to files there and a scrape of any API process reads them all; without it
(tests, a single process) the values stay in this object's own registry. Queue depths are not
stored at all: they are read from the broker when `/metrics` is scraped.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import redis
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mfa_pipeline.adapters.prometheus_dir import ENV
from mfa_pipeline.ports import Metrics

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from prometheus_client.metrics_core import Metric

log = structlog.get_logger(__name__)

# Creation → provider accepted: milliseconds when all is well, minutes with retries.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# What an application label reads when the request named none, or one no API key belongs to.
NO_APPLICATION = "none"
OTHER_APPLICATION = "other"

# Celery's Redis transport keeps a queue's messages of priority p > 0 under `<queue>\x06\x16<p>`.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


class CeleryQueueDepths:
    """Messages waiting in each Celery queue of a Redis broker (`LLEN`, one round trip)."""

    def __init__(self, client: redis.Redis, queues: Sequence[str]) -> None:
        self._redis = client
        self._queues = tuple(queues)

    def __call__(self) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for queue in self._queues:
            pipe.llen(queue)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{queue}{_PRIORITY_SEPARATOR}{step}")
        lengths = [int(n) for n in pipe.execute()]
        per_queue = 1 + len(_PRIORITY_STEPS)
        return {
            queue: sum(lengths[i * per_queue : (i + 1) * per_queue])
            for i, queue in enumerate(self._queues)
        }


class QueueDepthCollector(Collector):
    """`mfa_queue_depth{queue}`, read from the broker at each scrape; absent if it is down."""

    def __init__(self, depths: Callable[[], Mapping[str, int]]) -> None:
        self._depths = depths

    def collect(self) -> Iterable[Metric]:
        try:
            depths = self._depths()
        except redis.RedisError as exc:
            log.warning("metrics_queue_depth_unavailable", error=type(exc).__name__)
            return []
        family = GaugeMetricFamily(
            "mfa_queue_depth", "Messages waiting in each queue.", labels=["queue"]
        )
        for queue, depth in sorted(depths.items()):
            family.add_metric([queue], depth)
        return [family]


class PrometheusMetrics(Metrics):
    def __init__(
        self,
        *,
        applications: Iterable[str] = (),
        queue_depths: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        """Metrics in this process; `applications` bounds the application label.

        A client may name any application in its request, and each new name would be a new
        series: names outside `applications` (the API keys' applications) read `other`.
        """
        self._applications = frozenset(applications)
        own = CollectorRegistry(auto_describe=True)
        app_labels = ("factor", "application")
        self._created = Counter(
            "mfa_challenges_created",
            "Login challenges created.",
            app_labels,
            registry=own,
        )
        self._verified = Counter(
            "mfa_challenges_verified",
            "Login challenges answered successfully.",
            app_labels,
            registry=own,
        )
        self._failed = Counter(
            "mfa_challenges_failed",
            "Login challenges ended without success, by reason (locked, failed, denied).",
            (*app_labels, "reason"),
            registry=own,
        )
        self._expired = Counter(
            "mfa_challenges_expired",
            "Challenges expired unanswered by the sweep.",
            app_labels,
            registry=own,
        )
        self._latency = Histogram(
            "mfa_delivery_latency_seconds",
            "From the request of a send (creation or resend) to the provider accepting it.",
            ("channel",),
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self._provider_errors = Counter(
            "mfa_provider_errors",
            "Provider errors (on sending or later reported), by the provider's code.",
            ("channel", "provider_error_code"),
            registry=own,
        )
        self._reports = Counter(
            "mfa_delivery_reports",
            "Provider delivery reports applied to a challenge, by delivery status.",
            ("channel", "status"),
            registry=own,
        )
        self._rate_limited = Counter(
            "mfa_rate_limit_rejections",
            "Requests refused by a rate limit, by limit.",
            ("limit",),
            registry=own,
        )
        self._factor_locks = Counter(
            "mfa_factor_locks",
            "Code factors locked by the failure budget, or such a lock lifted, by action.",
            ("action",),
            registry=own,
        )
        self._waiters = Gauge(
            "mfa_long_poll_waiters",
            "Requests long-polling a challenge now.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self._queue_collector = (
            QueueDepthCollector(queue_depths) if queue_depths is not None else None
        )
        self._scrape = self._scrape_registry(own)

    def _scrape_registry(self, own: CollectorRegistry) -> CollectorRegistry:
        directory = os.environ.get(ENV)
        if directory:
            # Every process's files; our own values are among them.
            scrape = CollectorRegistry()
            multiprocess.MultiProcessCollector(scrape, path=directory)  # type: ignore[no-untyped-call]
        else:
            scrape = own
        if self._queue_collector is not None:
            scrape.register(self._queue_collector)
        return scrape

    def _app(self, application: str | None) -> str:
        if not application:
            return NO_APPLICATION
        return application if application in self._applications else OTHER_APPLICATION

    def challenge_created(self, *, factor: str, application: str | None) -> None:
        self._created.labels(factor, self._app(application)).inc()

    def challenge_verified(self, *, factor: str, application: str | None) -> None:
        self._verified.labels(factor, self._app(application)).inc()

    def challenge_failed(self, *, factor: str, application: str | None, reason: str) -> None:
        self._failed.labels(factor, self._app(application), reason).inc()

    def challenge_expired(self, *, factor: str, application: str | None) -> None:
        self._expired.labels(factor, self._app(application)).inc()

    def delivery_latency(self, *, channel: str, seconds: float) -> None:
        self._latency.labels(channel).observe(max(0.0, seconds))

    def provider_error(self, *, channel: str, provider_error_code: str) -> None:
        self._provider_errors.labels(channel, provider_error_code).inc()

    def delivery_reported(self, *, channel: str, status: str) -> None:
        self._reports.labels(channel, status).inc()

    def rate_limited(self, *, limit: str) -> None:
        self._rate_limited.labels(limit).inc()

    def factor_lock(self, *, action: str) -> None:
        self._factor_locks.labels(action).inc()

    def long_poll_waiters(self, delta: int) -> None:
        self._waiters.inc(delta)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self._scrape), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a finished process's live gauges from the sums (multiprocess mode only)."""
    directory = os.environ.get(ENV)
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
