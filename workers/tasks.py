"""Thin tasks: look up the service, call it, retry only transient provider errors."""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any

import structlog
from celery import signals
from celery.concurrency.thread import TaskPool as ThreadTaskPool

from mfa_pipeline.adapters.celery_app import (
    DELIVER_PUSH,
    DELIVER_SMS,
    DELIVER_WEBHOOK,
    REDELIVER_STALE,
    SWEEP_EXPIRED,
)
from mfa_pipeline.bootstrap import bootstrap
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.services.delivery import DeliveryOutcome
from mfa_pipeline.services.push import PushOutcome
from mfa_pipeline.services.webhooks import WebhookOutcome

if TYPE_CHECKING:
    from collections.abc import Callable

    from celery import Celery, Task

    from mfa_pipeline.bootstrap import Container

_containers: dict[int, Container] = {}
_lock = threading.Lock()


def container_for(app: Celery) -> Container:
    """The process's container for `app`, built on first use (after the worker forked)."""
    key = id(app)
    with _lock:
        if key not in _containers:
            factory = app.conf.mfa_container_factory
            if factory is None:
                _containers[key] = bootstrap(app.conf.mfa_settings)
            else:
                _containers[key] = factory()
        return _containers[key]


def retry_countdown(retries: int, *, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: spreads retries so a provider outage ends smoothly."""
    return random.uniform(0, min(cap, base * (2**retries)))


def retry_later(task: Task, retries: int) -> Exception:
    """The task's retry, after the deployment's backoff (`MFA_SMS_RETRY_BACKOFF_*`)."""
    settings = task.app.conf.mfa_settings
    countdown = retry_countdown(
        retries, base=settings.sms_retry_backoff_seconds, cap=settings.sms_retry_backoff_max_seconds
    )
    return task.retry(countdown=countdown)  # type: ignore[no-any-return]


def run_delivery(task: Task, deliver: Callable[[bool], DeliveryOutcome | PushOutcome]) -> str:
    """Run `deliver(final_attempt)`; retry later when it asks to, or when a store blinked.

    A blink can only come before the send was claimed (once claimed, the service hands the
    send back as `retrying` itself): never acknowledge a delivery that did not happen.
    """
    retries = int(task.request.retries)
    try:
        outcome = deliver(retries >= task.max_retries)
    except UnavailableError:
        raise retry_later(task, retries) from None
    if outcome in (DeliveryOutcome.RETRY, PushOutcome.RETRY):
        raise retry_later(task, retries)
    return outcome.value


def register(app: Celery) -> None:
    settings = app.conf.mfa_settings

    def warm_up(**_: Any) -> None:
        # Connect to Redis and SQL when a pool process starts, not on its first delivery.
        container_for(app)

    def flush_audit(**_: Any) -> None:
        # Pool processes leave without running atexit: write their batched audit rows first.
        container = _containers.get(id(app))
        if container is not None:
            container.services.auditor.flush()

    def warm_up_threads(sender: Any = None, **_: Any) -> None:
        # A threads pool runs tasks in the main process, which no `worker_process_init` reaches;
        # a prefork main process never runs a task, so it builds nothing.
        if isinstance(getattr(sender, "pool", None), ThreadTaskPool):
            container_for(app)

    signals.worker_process_init.connect(warm_up, weak=False)
    signals.worker_process_shutdown.connect(flush_audit, weak=False)
    signals.worker_ready.connect(warm_up_threads, weak=False)
    signals.worker_shutdown.connect(flush_audit, weak=False)  # threads pool: the main process

    @app.task(
        name=DELIVER_SMS,
        shared=False,
        bind=True,
        acks_late=True,
        ignore_result=True,
        max_retries=settings.sms_max_retries,
    )
    def deliver_sms(self: Task, challenge_id: str, seq: int) -> str:
        delivery = container_for(self.app).services.sms_delivery
        return run_delivery(
            self,
            lambda final: delivery.deliver(challenge_id=challenge_id, seq=seq, final_attempt=final),
        )

    _register_push(app)
    _register_webhooks(app)

    @app.task(name=SWEEP_EXPIRED, shared=False, bind=True, acks_late=True, ignore_result=True)
    def sweep_expired(self: Task) -> int:
        return container_for(self.app).services.sweeps.sweep()

    @app.task(name=REDELIVER_STALE, shared=False, bind=True, acks_late=True, ignore_result=True)
    def redeliver_stale(self: Task) -> int:
        return container_for(self.app).services.sweeps.redeliver_stale()


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))


@signals.task_postrun.connect
def _unbind_task(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()


def _register_webhooks(app: Celery) -> None:
    settings = app.conf.mfa_settings

    @app.task(
        name=DELIVER_WEBHOOK,
        shared=False,
        bind=True,
        acks_late=True,
        ignore_result=True,
        max_retries=settings.webhook_max_retries,
    )
    def deliver_webhook(self: Task, event: dict[str, Any]) -> str:
        webhooks = container_for(self.app).services.webhooks
        if webhooks is None:
            return "disabled"
        retries = int(self.request.retries)
        if "challenge_id" not in event:  # a user event: user.mfa_invited, ...
            outcome = webhooks.deliver_user_event(
                event_id=str(event["id"]),
                type=str(event["type"]),
                user_id=str(event["user_id"]),
                firm_id=str(event["firm_id"]),
                actor_id=str(event["actor_id"]),
                occurred_at=float(event["occurred_at"]),
                final_attempt=retries >= self.max_retries,
            )
            if outcome is WebhookOutcome.RETRY:
                raise retry_later(self, retries)
            return outcome.value
        outcome = webhooks.deliver(
            challenge_id=str(event["challenge_id"]),
            user_id=str(event["user_id"]),
            factor=str(event["factor"]),
            status=str(event["status"]),
            application=event.get("application"),
            final_attempt=retries >= self.max_retries,
        )
        if outcome is WebhookOutcome.RETRY:
            raise retry_later(self, retries)
        return outcome.value


def _register_push(app: Celery) -> None:
    settings = app.conf.mfa_settings

    @app.task(
        name=DELIVER_PUSH,
        shared=False,
        bind=True,
        acks_late=True,
        ignore_result=True,
        max_retries=settings.push_max_retries,
    )
    def deliver_push(self: Task, challenge_id: str) -> str:
        push = container_for(self.app).services.push_delivery
        return run_delivery(
            self, lambda final: push.deliver(challenge_id=challenge_id, final_attempt=final)
        )
