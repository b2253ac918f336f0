"""The worker's Celery app: the producer's configuration, the tasks, the process signals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import signals

from mfa_pipeline.adapters.celery_app import create_producer
from workers import tasks

if TYPE_CHECKING:
    from collections.abc import Callable

    from celery import Celery

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.config import Settings


def create_celery_app(
    settings: Settings, *, container_factory: Callable[[], Container] | None = None
) -> Celery:
    """An app for `settings`. Tasks build their `Container` lazily, once per worker process."""
    app = create_producer(settings)
    app.conf.mfa_container_factory = container_factory
    # One scheduler sends at a time; a standby beat waits for its lock.
    app.conf.beat_scheduler = "workers.beat_lock:SingleBeatScheduler"
    tasks.register(app)
    return app


def _configure_worker_logging(**_: Any) -> None:
    """Celery skips its own logging setup when this receiver exists: ours redacts and renders."""
    from mfa_pipeline.config import load_settings  # noqa: PLC0415
    from mfa_pipeline.logs import configure_logging  # noqa: PLC0415

    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, env=settings.env.value)


signals.setup_logging.connect(_configure_worker_logging, weak=False)


def _metrics_process_exit(pid: int | None = None, **_: Any) -> None:
    """A pool process left: its live gauges must stop counting in `/metrics` sums."""
    from mfa_pipeline.adapters.prometheus_metrics import mark_process_dead  # noqa: PLC0415

    if pid is not None:
        mark_process_dead(pid)


signals.worker_process_shutdown.connect(_metrics_process_exit, weak=False)
