"""The Celery app factory: queues, routing and the delivery guarantees the tasks rely on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from celery import Celery, signals
from kombu import Exchange, Queue  # type: ignore[attr-defined]

from mfa_pipeline.adapters.celery_publisher import (
    DELIVER_PUSH,
    DELIVER_SMS,
    DELIVER_WEBHOOK,
    SWEEP_EXPIRED,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.config import Settings

QUEUES = ("sms", "push", "webhooks", "sweeps")

# Longest countdown a retry may ask for; the broker's visibility timeout must exceed it, or a
# Redis broker redelivers a task that is only waiting for its ETA.
MAX_RETRY_COUNTDOWN_SECONDS = 300
VISIBILITY_TIMEOUT_SECONDS = 3600


AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})


def is_amqp(broker_url: str) -> bool:
    return urlsplit(broker_url).scheme in AMQP_SCHEMES


def declared_queues(broker_url: str) -> list[Queue]:
    """The queues as the broker should declare them.

    On RabbitMQ they are quorum queues (replicated, and redelivering what a lost consumer held),
    each bound to a topic exchange of its own name: Celery's native delayed delivery, which
    carries retry countdowns on quorum queues, cannot route through direct exchanges.
    """
    if not is_amqp(broker_url):
        return [Queue(name) for name in QUEUES]
    return [
        Queue(
            name,
            Exchange(name, type="topic"),
            routing_key=name,
            queue_arguments={"x-queue-type": "quorum"},
        )
        for name in QUEUES
    ]


class MfaCelery(Celery):  # type: ignore[misc]
    """Celery, with countdowns RabbitMQ's native delayed delivery can carry.

    That delivery counts whole seconds and refuses a countdown that truncates to zero; a
    jittered retry countdown is often below one second, so on RabbitMQ it is rounded up.
    """

    def send_task(self, *args: Any, **options: Any) -> Any:
        countdown = options.get("countdown")
        if countdown and 0 < countdown < 1 and is_amqp(str(self.conf.broker_url)):
            options["countdown"] = 1
        return super().send_task(*args, **options)


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
        "task_queues": declared_queues(settings.effective_broker_url),
        # Quorum queues refuse a global prefetch limit: the worker sets it per consumer instead.
        "worker_detect_quorum_queues": True,
        "task_default_queue": "sms",
        "task_routes": {
            DELIVER_SMS: {"queue": "sms"},
            DELIVER_PUSH: {"queue": "push"},
            DELIVER_WEBHOOK: {"queue": "webhooks"},
            SWEEP_EXPIRED: {"queue": "sweeps"},
        },
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
    app = MfaCelery("mfa_pipeline", set_as_current=False)
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


def _metrics_process_exit(pid: int | None = None, **_: Any) -> None:
    """A pool process left: its live gauges must stop counting in `/metrics` sums."""
    from mfa_pipeline.adapters.prometheus_metrics import mark_process_dead  # noqa: PLC0415

    if pid is not None:
        mark_process_dead(pid)


signals.worker_process_shutdown.connect(_metrics_process_exit, weak=False)
