pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.twilio",
    "tests.fixtures.pipeline",
]
