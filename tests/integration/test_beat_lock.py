"""A standby `mfa-pipeline beat` is safe: only the holder of the Redis lock sends.

Two schedulers on one real Redis, as two beat processes of a deployment would run; what they
publish is counted with Celery's own `after_task_publish` signal.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
import redis
from celery import signals

from tests.fixtures.pipeline import make_settings
from workers.app import create_celery_app
from workers.beat_lock import BeatLock, SingleBeatScheduler

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mfa_pipeline.config import Settings


@pytest.fixture
def beat_settings(tmp_path: Path, redis_url: str, key_prefix: str) -> Settings:
    # A lock that runs out in a second, and a schedule due at every tick.
    settings = make_settings(
        tmp_path,
        redis_url,
        key_prefix,
        beat_lock_seconds=1.0,
        sweep_interval_seconds=0.01,
        delivery_recovery_interval_seconds=0.01,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@pytest.fixture
def published() -> Iterator[list[str]]:
    """Names of the tasks this process publishes while the test runs."""
    names: list[str] = []

    def count(sender: Any = None, **_: Any) -> None:
        names.append(str(sender))

    signals.after_task_publish.connect(count, weak=False)
    yield names
    signals.after_task_publish.disconnect(count)


def scheduler(settings: Settings, name: str) -> SingleBeatScheduler:
    app = create_celery_app(settings)
    filename = str(settings.data_dir / f"schedule-{name}")
    return SingleBeatScheduler(app=app, schedule_filename=filename, lazy=False)


def test_one_owner_holds_the_lock_until_it_stops_renewing_then_a_standby_takes_it(
    redis_url: str, key_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"{key_prefix}:beat-lock"
    active = BeatLock(client, key, ttl_seconds=0.5)
    standby = BeatLock(client, key, ttl_seconds=0.5)
    assert active.hold()
    assert not standby.hold()
    assert active.hold()  # renewed by its owner
    deadline = time.monotonic() + 10
    while not standby.hold():  # the active one stopped renewing (it died)
        assert time.monotonic() < deadline, "the standby never took the lock"
        time.sleep(0.05)
    assert not active.hold()  # back, it finds the lock taken and must not send
    standby.release()
    assert active.hold()  # a released lock is taken at once, not after its TTL


def test_a_standby_scheduler_sends_nothing_until_the_active_one_stops(
    beat_settings: Settings, published: list[str]
) -> None:
    active = scheduler(beat_settings, "active")
    standby = scheduler(beat_settings, "standby")
    try:
        active.tick()
        assert published, "the active beat sent its due sweeps"
        sent_by_active = len(published)
        for _ in range(3):
            time.sleep(0.05)
            standby.tick()
        assert len(published) == sent_by_active  # the standby sent nothing
        active.close()  # stopped: its lock is released
        time.sleep(0.05)
        standby.tick()
        assert len(published) > sent_by_active  # the standby took over
    finally:
        standby.close()
