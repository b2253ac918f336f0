"""A bare Celery app: the ceiling any Celery-based delivery can reach on this broker and pool.

Its config is the service's own `celery_config` (same broker URL, serializer, prefetch,
late acks), with one queue of its own; its task only increments a Redis counter. The worker
runs it as `celery -A bench.noop worker` with the SMS worker's pool and concurrency; the bench
process builds the same app from its settings to publish.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery, signals
from kombu import Queue  # type: ignore[attr-defined]

from mfa_pipeline.adapters.celery_app import celery_config

if TYPE_CHECKING:
    from mfa_pipeline.config import Settings

QUEUE = "bench-noop"
TASK = "bench.noop"
COUNTER_ENV = "BENCH_NOOP_COUNTER"

_clients: dict[int, redis.Redis] = {}


def _client(url: str) -> redis.Redis:
    """One client per process, made after the fork (as the service's container is)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(url)
    return _clients[pid]


def create_app(settings: Settings) -> Celery:
    config = celery_config(settings)
    for key in ("beat_schedule", "beat_schedule_filename", "task_routes"):
        config.pop(key, None)
    config.update(task_queues=[Queue(QUEUE)], task_default_queue=QUEUE)  # type: ignore[no-untyped-call]
    app = Celery("bench_noop", set_as_current=False)
    app.conf.update(config)
    url = settings.effective_broker_url

    @app.task(name=TASK, shared=False, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def noop(challenge_id: str, seq: int) -> None:  # noqa: ARG001 - the SMS task's arguments
        _client(url).incr(os.environ[COUNTER_ENV])

    def connect(**_: Any) -> None:
        _client(url)  # connect when a pool process starts, like the service's warm_up

    signals.worker_process_init.connect(connect, weak=False)
    return app


def __getattr__(name: str) -> Celery:
    """`celery -A bench.noop` asks for `app`: built from the worker's `MFA_*` environment."""
    if name == "app":
        from mfa_pipeline.config import load_settings  # noqa: PLC0415

        app = create_app(load_settings())
        globals()["app"] = app
        return app
    raise AttributeError(name)
