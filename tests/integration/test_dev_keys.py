"""Development keys made by the first process that needs them, read whole by every other."""

from __future__ import annotations

import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from mfa_pipeline.config import Settings, dev_api_key, dev_api_key_path, with_dev_keys

if TYPE_CHECKING:
    from pathlib import Path

STARTERS = 12  # about the processes `up` starts at once, and then some


def keys_of_processes_starting_together(data_dir: Path) -> set[tuple[str | None, str]]:
    barrier = threading.Barrier(STARTERS)

    def start() -> tuple[str | None, str]:
        barrier.wait()
        settings = with_dev_keys(Settings(env="development", data_dir=data_dir))
        return dev_api_key(settings), settings.encryption_keys[0]

    with ThreadPoolExecutor(STARTERS) as pool:
        return set(pool.map(lambda _: start(), range(STARTERS)))


def test_processes_starting_together_all_read_one_whole_key(tmp_path: Path) -> None:
    for attempt in range(20):
        data_dir = tmp_path / str(attempt)
        (keys,) = keys_of_processes_starting_together(data_dir)  # one pair, the same for all
        api_key, encryption_key = keys
        assert api_key
        assert api_key.startswith("dev_")
        assert encryption_key
        key_file = dev_api_key_path(Settings(env="development", data_dir=data_dir))
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".")) == []
