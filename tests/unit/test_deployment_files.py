"""The deployment files agree with the code: services, queues, commands and MFA_* variables.

No Docker engine is needed: docker-compose.yml is read as YAML, the env examples as text.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from mfa_pipeline.adapters.celery_app import QUEUES
from mfa_pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLES = sorted((ROOT / "config").glob("*.env.example"))
PRODUCTION_EXAMPLE = ROOT / "config" / "production.env.example"

REQUIRED_SERVICES = {
    "redis",
    "postgres",
    "migrate",
    "api",
    "worker-sms",
    "worker-push",
    "worker-sweeps",
    "worker-webhooks",
    "beat",
}
APP_SERVICES = REQUIRED_SERVICES - {"redis", "postgres"}


def test_flower_watches_the_same_broker() -> None:
    flower = services()["flower"]
    assert "--broker=redis://redis:6379/0" in flower["command"]
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


KNOWN_QUEUES = set(QUEUES)
# Read by the test fixtures, not by the service: the one MFA_* name that is not a setting.
HARNESS_VARIABLES = {"MFA_TEST_POSTGRES_URL"}

MFA_NAME = re.compile(r"\bMFA_[A-Z0-9_]+\b")
ASSIGNMENT = re.compile(r"^(?P<commented>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def setting_variables() -> set[str]:
    return {f"MFA_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict[str, object]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, object]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def command_of(service: dict[str, object]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def assignments(path: Path) -> list[tuple[str, str, bool]]:
    """(name, value, commented_out) for every `NAME=value` line, commented-out ones included."""
    found = []
    for line in path.read_text().splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match:
            found.append((match["name"], match["value"], match["commented"] is not None))
    return found


def test_there_are_development_production_and_test_examples() -> None:
    assert {path.name for path in ENV_EXAMPLES} >= {
        "development.env.example",
        "production.env.example",
        "test.env.example",
    }


def test_compose_defines_every_required_service() -> None:
    assert set(services()) >= REQUIRED_SERVICES


def test_compose_redis_keeps_its_security_state_across_a_restart() -> None:
    """Failure counts and each factor's last accepted TOTP step live there, not only challenges."""
    redis = services()["redis"]
    command = command_of(redis)
    assert command[command.index("--appendonly") + 1] == "yes"
    volumes = redis.get("volumes")
    assert isinstance(volumes, list)
    assert any(str(v).endswith(":/data") for v in volumes)


def test_worker_services_consume_only_known_queues() -> None:
    workers = {name: s for name, s in services().items() if command_of(s)[:1] == ["worker"]}
    assert set(workers) >= {"worker-sms", "worker-push", "worker-sweeps"}
    for name, service in workers.items():
        command = command_of(service)
        assert "--queues" in command, name
        queues = set(command[command.index("--queues") + 1].split(","))
        assert queues, name
        assert queues <= KNOWN_QUEUES, f"{name} names unknown queues {queues - KNOWN_QUEUES}"


@pytest.mark.parametrize(
    ("service", "queues", "concurrency"),
    [
        ("worker-sms", "sms", None),  # the command's defaults: threads, many sends in flight
        ("worker-push", "push", None),
        ("worker-sweeps", "sweeps", "1"),
        ("worker-webhooks", "webhooks", None),
    ],
)
def test_each_worker_serves_its_own_queue(
    service: str, queues: str, concurrency: str | None
) -> None:
    command = command_of(services()[service])
    assert command[command.index("--queues") + 1] == queues
    if concurrency is not None:
        assert command[command.index("--concurrency") + 1] == concurrency
    else:
        assert "--concurrency" not in command
        assert "--pool" not in command


def test_app_services_run_the_contract_commands() -> None:
    commands = {name: command_of(services()[name]) for name in APP_SERVICES}
    assert commands["migrate"] == ["db", "upgrade"]
    # In a container the API must listen beyond loopback: compose publishes the port.
    assert commands["api"] == ["api", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104
    assert commands["beat"] == ["beat"]


def test_compose_commands_parse_with_the_real_cli() -> None:
    import click  # noqa: PLC0415

    from mfa_pipeline.cli import main  # noqa: PLC0415 - after the cheaper checks

    for name in APP_SERVICES:
        args = command_of(services()[name])
        command: click.Command = main
        while isinstance(command, click.Group):  # `db upgrade`: a group, then its command
            found = command.get_command(click.Context(command), args[0]) if args else None
            assert found is not None, f"{name}: {args[:1]} is not a command"
            command, args = found, args[1:]
        command.make_context(command.name or name, list(args))  # raises on unknown options


def test_app_services_are_configured_for_production() -> None:
    for name in APP_SERVICES:
        service = services()[name]
        env_file = service["env_file"]
        assert "config/production.env" in ([env_file] if isinstance(env_file, str) else env_file)
        environment = service["environment"]
        assert isinstance(environment, dict), name
        assert environment["MFA_ENV"] == "production"
        assert environment["MFA_REDIS_URL"] == "redis://redis:6379/0"
        url = str(environment["MFA_DATABASE_URL"])
        assert url.startswith("postgresql+psycopg://mfa:")
        assert url.endswith("@postgres:5432/mfa")


def test_stores_have_healthchecks_and_a_persistent_database() -> None:
    found = services()
    assert found["redis"]["image"] == "redis:7-alpine"
    assert "redis-cli" in found["redis"]["healthcheck"]["test"]
    assert found["postgres"]["image"] == "postgres:16-alpine"
    assert "pg_isready" in found["postgres"]["healthcheck"]["test"]
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in found["postgres"]["volumes"])


def test_services_wait_for_healthy_stores_and_finished_migrations() -> None:
    found = services()
    assert found["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in APP_SERVICES - {"migrate"}:
        depends = found[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_api_healthcheck_asks_readyz() -> None:
    test = services()["api"]["healthcheck"]["test"]
    assert "/readyz" in " ".join(test if isinstance(test, list) else [test])


def test_every_mfa_variable_in_the_deployment_files_is_a_setting() -> None:
    known = setting_variables() | HARNESS_VARIABLES
    for path in [COMPOSE, DOCKERFILE, *ENV_EXAMPLES]:
        unknown = set(MFA_NAME.findall(path.read_text())) - known
        assert not unknown, f"{path.name} uses {sorted(unknown)}, not fields of Settings"


@pytest.mark.parametrize("path", ENV_EXAMPLES, ids=lambda path: path.name)
def test_every_setting_is_listed_in_each_env_example(path: Path) -> None:
    listed = {name for name, _, _ in assignments(path)}
    missing = setting_variables() - listed
    assert not missing, f"{path.name} lacks {sorted(missing)}"


@pytest.mark.parametrize("path", ENV_EXAMPLES, ids=lambda path: path.name)
def test_env_examples_define_each_variable_once(path: Path) -> None:
    names = [name for name, _, _ in assignments(path)]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("path", ENV_EXAMPLES, ids=lambda path: path.name)
def test_env_example_values_are_valid_settings(path: Path) -> None:
    values: dict[str, object] = {
        name.removeprefix("MFA_").lower(): value
        for name, value, commented in assignments(path)
        if not commented and name.startswith("MFA_") and name not in HARNESS_VARIABLES
    }
    # Types and ranges only: production's placeholders are meant to be refused at start-up.
    values["env"] = "development"
    Settings(**values)  # type: ignore[arg-type]


def test_production_example_secrets_are_placeholders() -> None:
    values = {name: value for name, value, commented in assignments(PRODUCTION_EXAMPLE)}
    for name in (
        "MFA_API_KEYS",
        "MFA_ENCRYPTION_KEYS",
        "MFA_TWILIO_AUTH_TOKEN",
        "POSTGRES_PASSWORD",
    ):
        assert "CHANGE_ME" in values[name], name
    assert values["MFA_ENV"] == "production"


def test_dockerfile_runs_the_cli_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user, "no USER line"
    assert user[-1] not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["mfa-pipeline"\]', text, re.MULTILINE)
    assert re.search(r"pip install \.", text)
