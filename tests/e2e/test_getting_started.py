"""docs/getting-started.md, run as a reader runs it: `mfa-pipeline up`, then its shell blocks.

The blocks marked `<!-- run -->` run in order in one bash with `set -euo pipefail`, in the
directory where `up` runs (so `.mfa-data/` is the page's), with `MFA` pointing at the free port
`up` was given. A page that drifts from the service fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fixtures.pipeline import wait_until
from tests.fixtures.services import free_port

PAGE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"
RUN_BLOCK = re.compile(r"^<!-- run -->\n```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
START_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)

# What the page's blocks print on their own lines, in this order: each login's outcome.
EXPECTED_OUTCOMES = [
    "bypass",  # no factor yet: the password is enough
    "active",  # TOTP factor activated
    "auth",  # preauth asks for a second factor
    "verified",  # TOTP login
    "allow",  # the trusted token skips the second factor
    "active",  # SMS factor activated
    "verified",  # SMS login with the verify step
    "approved",  # push approved on the simulated phone
    "verified",  # backup code login
    "9",  # backup codes left
]


def run_blocks(page: str) -> list[str]:
    return [match.group(1) for match in RUN_BLOCK.finditer(page)]


def wait_ready(url: str, up: subprocess.Popen[bytes]) -> None:
    def answers() -> bool:
        assert up.poll() is None, "mfa-pipeline up stopped on its own"
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answers, timeout=120, interval=0.2)


def in_order(expected: list[str], lines: list[str]) -> bool:
    remaining = iter(lines)
    return all(any(line == want for line in remaining) for want in expected)


# Ready in seconds on an idle machine; the generous bounds are for a machine busy with other runs.
@pytest.mark.timeout(300)
def test_the_getting_started_page_runs_against_a_started_service(tmp_path: Path) -> None:
    page = PAGE.read_text(encoding="utf-8")
    blocks = run_blocks(page)
    assert len(blocks) > 10, "the page lost its <!-- run --> markers"
    first_block = START_BLOCK.search(page)
    assert first_block is not None
    assert "mfa-pipeline up\n" in first_block.group(1), "step 1 no longer starts the service"
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "mfa-pipeline").exists(), "the project is not installed in this venv"
    for tool in ("bash", "curl", "jq"):
        assert shutil.which(tool), f"{tool} is missing: scripts/test installs it (as root)"

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFA_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # as after `. .venv/bin/activate`
    up_log = tmp_path / "up.log"
    with up_log.open("wb") as log:
        up = subprocess.Popen(  # its own process group: nothing of it outlives the test
            [bin_dir / "mfa-pipeline", "up", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_ready(url, up)
        shell = run_page(blocks, cwd=tmp_path, env={**env, "MFA": url})
    finally:
        stop(up)
    report = f"stdout:\n{shell.stdout}\nstderr:\n{shell.stderr}\nup:\n{tail(up_log)}"
    assert shell.returncode == 0, report
    lines = [line.strip() for line in shell.stdout.splitlines()]
    assert in_order(EXPECTED_OUTCOMES, lines), report
    # The two refusals the page shows: a wrong TOTP code, a backup code used twice.
    assert '"code":"invalid_code"' in shell.stdout, report
    assert '"reason":"used"' in shell.stdout, report
    assert up.returncode == 0, f"mfa-pipeline up did not stop cleanly:\n{tail(up_log)}"


def run_page(
    blocks: list[str], *, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    script = "set -euo pipefail\n" + "\n".join(blocks)
    try:
        return subprocess.run(
            ["bash", "-c", script],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the page's commands did not finish:\n{exc.stdout!r}\n{exc.stderr!r}")


def stop(up: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as Ctrl-C would: `up` stops its roles warmly; the group is killed if it hangs."""
    up.send_signal(signal.SIGTERM)
    try:
        up.wait(timeout=45)
    except subprocess.TimeoutExpired:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
