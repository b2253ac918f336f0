"""The Celery app factory: queues, routing and the delivery guarantees the tasks rely on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Celery, signals
from kombu import Queue  # type: ignore[attr-defined]

from mfa_pipeline.adapters.celery_publisher import DELIVER_SMS, SWEEP_EXPIRED

if TYPE_CHECKING:
    from collections.abc import Callable

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.config import Settings

QUEUES = ("sms", "push", "webhooks", "sweeps")

# Longest countdown a retry may ask for; the broker's visibility timeout must exceed it, or a
# Redis broker redelivers a task that is only waiting for its ETA.
MAX_RETRY_COUNTDOWN_SECONDS = 300
VISIBILITY_TIMEOUT_SECONDS = 3600


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.effective_broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        # A task is acknowledged after it ran: a killed worker's task is delivered again,
        # and the services' delivered-markers make that second run harmless.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 4,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "sms",
        "task_routes": {DELIVER_SMS: {"queue": "sms"}, SWEEP_EXPIRED: {"queue": "sweeps"}},
        "task_soft_time_limit": 30,
        "task_time_limit": 60,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "beat_schedule": {
            "sweep-expired-challenges": {
                "task": SWEEP_EXPIRED,
                "schedule": settings.sweep_interval_seconds,
                # A sweep that could not start before the next one is due is dropped, not piled up.
                "options": {"queue": "sweeps", "expires": settings.sweep_interval_seconds},
            }
        },
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
    }


def create_celery_app(
    settings: Settings, *, container_factory: Callable[[], Container] | None = None
) -> Celery:
    """An app for `settings`. Tasks build their `Container` lazily, once per worker process."""
    app = Celery("mfa_pipeline", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.mfa_settings = settings
    app.conf.mfa_container_factory = container_factory
    from workers import tasks  # noqa: PLC0415 - tasks import this module's helpers

    tasks.register(app)
    return app


def _configure_worker_logging(**_: Any) -> None:
    """Celery skips its own logging setup when this receiver exists: ours redacts and renders."""
    from mfa_pipeline.config import load_settings  # noqa: PLC0415
    from mfa_pipeline.logs import configure_logging  # noqa: PLC0415

    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, env=settings.env.value)


signals.setup_logging.connect(_configure_worker_logging, weak=False)
