"""The Celery producer: task names, queue names, routing and the broker configuration.

The API publishes with it and the workers consume with it, so both read the names from here;
importing it needs nothing from `workers/`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from celery import Celery
from kombu import Exchange, Queue  # type: ignore[attr-defined]

if TYPE_CHECKING:
    from mfa_pipeline.config import Settings

# Task names are the contract between the API and the workers; `workers/tasks.py` registers them.
DELIVER_SMS = "mfa.deliver_sms"
DELIVER_PUSH = "mfa.deliver_push"
DELIVER_WEBHOOK = "mfa.deliver_webhook"
SWEEP_EXPIRED = "mfa.sweep_expired"
REDELIVER_STALE = "mfa.redeliver_stale"

SMS_QUEUE = "sms"
PUSH_QUEUE = "push"
WEBHOOK_QUEUE = "webhooks"
SWEEP_QUEUE = "sweeps"
QUEUES = (SMS_QUEUE, PUSH_QUEUE, WEBHOOK_QUEUE, SWEEP_QUEUE)

# Each task runs on a queue of its own, so each kind of work scales (and backs up) apart.
QUEUE_OF = {
    DELIVER_SMS: SMS_QUEUE,
    DELIVER_PUSH: PUSH_QUEUE,
    DELIVER_WEBHOOK: WEBHOOK_QUEUE,
    SWEEP_EXPIRED: SWEEP_QUEUE,
    REDELIVER_STALE: SWEEP_QUEUE,
}

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
        "task_default_queue": SMS_QUEUE,
        "task_routes": {task: {"queue": queue} for task, queue in QUEUE_OF.items()},
        "task_soft_time_limit": 30,
        "task_time_limit": 60,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "beat_schedule": {
            "sweep-expired-challenges": {
                "task": SWEEP_EXPIRED,
                "schedule": settings.sweep_interval_seconds,
                # A sweep that could not start before the next one is due is dropped, not piled up.
                "options": {"queue": SWEEP_QUEUE, "expires": settings.sweep_interval_seconds},
            },
            # Sends a dead worker took with it go out again (services/sweeps.py).
            "redeliver-stale-deliveries": {
                "task": REDELIVER_STALE,
                "schedule": settings.delivery_recovery_interval_seconds,
                "options": {
                    "queue": SWEEP_QUEUE,
                    "expires": settings.delivery_recovery_interval_seconds,
                },
            },
        },
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
    }


def create_producer(settings: Settings) -> MfaCelery:
    """An app that sends tasks by name; `workers.app` adds the tasks to consume them."""
    app = MfaCelery("mfa_pipeline", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.mfa_settings = settings
    return app
