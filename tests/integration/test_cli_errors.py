"""What a newcomer types wrong gets one clear line on stderr and an exit code, never a trace.

Exit 1 for settings and unreachable services, 2 for a usage error (click's convention). Most
go through click's runner (the same parser and error path as the installed command); the
process-level ones (stderr, exit status, a busy port, the log of `api`) run the real command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib.metadata import version
from typing import TYPE_CHECKING

import httpx
import pytest
from click.testing import CliRunner

from mfa_pipeline.cli import main
from tests.fixtures.pipeline import wait_until
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from click.testing import Result


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def invoke(args: list[str], data_dir: Path, **env: str) -> Result:
    environment = {"MFA_DATA_DIR": str(data_dir), "MFA_LOG_LEVEL": "WARNING", **env}
    return CliRunner().invoke(main, args, env=environment)


def one_error_line(result: Result) -> str:
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def command_env(data_dir: Path, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MFA_")}
    return {**clean, "MFA_DATA_DIR": str(data_dir), **env}


def test_version_prints_the_installed_packages_version(data_dir: Path) -> None:
    result = invoke(["--version"], data_dir)

    assert result.exit_code == 0
    assert result.stdout == f"mfa-pipeline, version {version('mfa-pipeline')}\n"


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("MFA_ENV", "prod", "MFA_ENV: Input should be 'development', 'test' or 'production'"),
        ("MFA_TRUSTED_SESSION_TTL_SECONDS", "30", "MFA_TRUSTED_SESSION_TTL_SECONDS: Input should"),
        ("MFA_TOTP_ISSUERS", "Acme Payroll", "MFA_TOTP_ISSUERS: Value error, entries are"),
        ("MFA_TOTP_ISSUER", "Acme:Payroll", "MFA_TOTP_ISSUER: String should match"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_exit_1(
    variable: str, value: str, said: str, data_dir: Path
) -> None:
    result = invoke(["db", "upgrade"], data_dir, **{variable: value})

    assert result.exit_code == 1
    assert said in one_error_line(result)
    assert not data_dir.exists()  # nothing was started or migrated


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MFA_TOTP_ISSUERS", "app-without-issuer-s3cr3t"), ("MFA_TWILIO_TIMEOUT_SECONDS", "s3cr3t")],
)
def test_the_value_of_a_bad_setting_is_not_repeated_in_the_error(
    variable: str, value: str, data_dir: Path
) -> None:
    result = invoke(["db", "upgrade"], data_dir, **{variable: value})  # a pasted secret, maybe

    assert variable in one_error_line(result)
    assert "s3cr3t" not in result.output


def test_production_without_its_keys_is_one_line_from_every_command(data_dir: Path) -> None:
    for args in (["api", "--port", str(free_port())], ["device", "register", "alice"]):
        result = invoke(args, data_dir, MFA_ENV="production", MFA_REDIS_URL="redis://x")

        assert result.exit_code == 1
        assert "MFA_API_KEYS and MFA_ENCRYPTION_KEYS must be set" in one_error_line(result)


def test_the_installed_command_prints_the_line_on_stderr_without_a_traceback(
    data_dir: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mfa_pipeline.cli", "db", "upgrade"],
        env=command_env(data_dir, MFA_ENV="prod"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "Error: invalid setting MFA_ENV: Input should be 'development', 'test' or 'production'"
    ]


# --- ports -----------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["0", "65536", "99999", "-1"])
@pytest.mark.parametrize(
    ("command", "option"), [("up", "--port"), ("up", "--demo-port"), ("api", "--port")]
)
def test_a_port_outside_1_to_65535_is_a_usage_error(
    command: str, option: str, port: str, data_dir: Path
) -> None:
    result = invoke([command, option, port], data_dir)

    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert "1<=x<=65535" in result.stderr
    assert not data_dir.exists()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_up_on_a_busy_port_says_so_at_once_and_exits_1(busy_port: int, data_dir: Path) -> None:
    result = invoke(["up", "--port", str(busy_port)], data_dir)

    assert result.exit_code == 1
    said = (
        f"Error: cannot listen on 127.0.0.1:{busy_port} (Address already in use): "
        "another program uses it; stop it or choose another port with --port"
    )
    assert one_error_line(result) == said
    # Refused before anything started: no embedded Redis, no database, only the dev keys.
    assert sorted(p.name for p in data_dir.iterdir()) == ["dev-api-key", "dev-encryption-key"]


# --- the device simulator --------------------------------------------------------------------


def test_a_device_command_against_a_port_where_no_api_listens_is_one_line(
    data_dir: Path,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    result = invoke(["device", "register", "alice", "--api", nowhere], data_dir)

    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"Error: cannot reach the API at {nowhere} (ConnectError): is it running there? "
        "--api names another address"
    )
    assert not (data_dir / "device.json").exists()  # no device half-registered


# --- the API on a database that was never migrated -------------------------------------------


def test_api_on_a_database_never_migrated_logs_the_cause_once_naming_the_fix(
    data_dir: Path, redis_url: str
) -> None:
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "mfa_pipeline.cli", "api", "--port", str(port)],
        env=command_env(data_dir, MFA_REDIS_URL=redis_url, MFA_LOG_FORMAT="json"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        key = wait_for_key(data_dir, api)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            wait_for_api(client, api)
            for _ in range(3):
                answer = client.put("/v1/users/alice", json={"firm_id": "acme"}, headers=key)
                assert answer.status_code == 503
    finally:
        api.terminate()
        _, stderr = api.communicate(timeout=30)

    warnings = [line for line in stderr.splitlines() if '"level": "warning"' in line]
    assert len(warnings) == 1, stderr
    assert '"event": "database_not_migrated"' in warnings[0]
    assert "mfa-pipeline db upgrade" in warnings[0]


def wait_for_key(data_dir: Path, process: subprocess.Popen[str]) -> dict[str, str]:
    path = data_dir / "dev-api-key"

    def written() -> bool:
        assert process.poll() is None, "the API stopped on its own"
        return path.exists()

    wait_until(written, timeout=60, interval=0.05)
    return {"Authorization": f"Bearer {path.read_text().strip()}"}


def wait_for_api(client: httpx.Client, process: subprocess.Popen[str]) -> None:
    def healthy() -> bool:
        assert process.poll() is None, "the API stopped on its own"
        try:
            return client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, timeout=60, interval=0.05)
