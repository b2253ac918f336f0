"""Each drill gets a redis-server of its own: its workers must never drain (or wait behind)
Celery messages other tests left on the session's Redis, and its faults reach nobody else."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.cli.embedded_redis import EmbeddedRedis

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test alone; it persists like a production one, so it can restart."""
    server = EmbeddedRedis(tmp_path, persist=True, binary=shutil.which("redis-server"))
    server.start()
    yield server
    server.stop()
