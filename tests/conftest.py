import pytest

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.twilio",
    "tests.fixtures.fcm",
    "tests.fixtures.pipeline",
    "tests.fixtures.redis_cluster",
    "tests.fixtures.worker_processes",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault drills run one after another in one process under pytest-xdist.

    They kill, restart and add worker processes and count what was sent in the meantime: two
    of them at once would only slow each other down. Without xdist the mark changes nothing.
    """
    for item in items:
        if item.get_closest_marker("drill"):
            item.add_marker(pytest.mark.xdist_group("drills"))
