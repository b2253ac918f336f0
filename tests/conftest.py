pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.twilio",
    "tests.fixtures.fcm",
    "tests.fixtures.pipeline",
    "tests.fixtures.redis_cluster",
    "tests.fixtures.worker_processes",
]
