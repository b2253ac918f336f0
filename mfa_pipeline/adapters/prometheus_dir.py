"""Where prometheus-client's multiprocess mode keeps its files, prepared before it is imported.

prometheus-client picks its value store once, when it is first imported: in-process memory, or
memory-mapped files in `PROMETHEUS_MULTIPROC_DIR` that every process of a deployment writes and
`/metrics` sums. This module therefore imports nothing of it: the CLI calls it, and sets the
variable, before any metric exists.

Files are named after the writing process's id (`counter_1234.db`). A new deployment run starts
from an empty directory, or it would add the counts of processes long gone.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID = re.compile(r"_(\d+)\.db$")


def default_dir(data_dir: Path) -> Path:
    """The deployment's directory under the data dir."""
    return data_dir / "metrics"


def prepare(directory: Path, *, keep_live: bool) -> Path:
    """Create `directory` and clean it for a new run.

    `keep_live=False` (`mfa-pipeline up`, which starts every process itself) empties it.
    `keep_live=True` (a lone `api` or `worker` sharing the directory with a sibling role already
    running) removes only the files of processes that no longer exist.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        match = _PID.search(path.name)
        if keep_live and match is not None and _alive(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
