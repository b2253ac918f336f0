from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from xdist.scheduler.protocol import Scheduling

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.twilio",
    "tests.fixtures.fcm",
    "tests.fixtures.pipeline",
    "tests.fixtures.redis_cluster",
    "tests.fixtures.worker_processes",
]

# Tests that pytest-xdist (`--dist loadgroup`, as scripts/test runs the suite) keeps in one
# process, one after another. The fault drills kill, restart and add worker processes and count
# what was sent meanwhile: two at once would only slow each other down. The `up --demo` tests
# share one module-scoped `up`: spread out, each process started its own (28 s each).
# By path, not by the xdist_group mark: pytest 9 ignores the node id suffix xdist 3.8 uses for it.
SERIAL_GROUPS = {
    "tests/drills/": "drills",
    "tests/e2e/test_up_demo.py::": "up-demo",
}


def serial_group(nodeid: str) -> str | None:
    return next((g for prefix, g in SERIAL_GROUPS.items() if nodeid.startswith(prefix)), None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Scheduling | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling  # noqa: PLC0415 - only under xdist

    class PathGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return serial_group(nodeid) or super()._split_scope(nodeid)

    return PathGroupScheduling(config, log)
