"""`mfa-pipeline up --demo`: the service and the reference login app from one command.

One `up --demo` runs for the module (it takes a while to start on two cores); each test reads
what it printed or talks to it over HTTP, as a newcomer's terminal and browser would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest

from mfa_pipeline.demo.passwords import DEMO_PASSWORDS
from tests.fixtures.pipeline import new_user_id
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BANNER_END = "  Stop with Ctrl-C."


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    api_url: str
    demo_url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def api_key(self) -> str:
        found = re.search(r"^  API key    (\S+)$", self.output(), re.MULTILINE)
        assert found, self.output()
        return found[1]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp_path = tmp_path_factory.mktemp("up")
    api_port, demo_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFA_")}
    env["MFA_DATA_DIR"] = str(tmp_path / "data")
    command = [sys.executable, "-m", "mfa_pipeline.cli", "up", "--demo", "--concurrency", "1"]
    command += ["--port", str(api_port), "--demo-port", str(demo_port)]
    log = tmp_path / "up.log"
    with log.open("wb") as out:  # one stream, in the order a terminal shows it
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=out)
    running = Up(
        process,
        log,
        tmp_path / "data",
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{demo_port}",
    )
    try:
        deadline = time.monotonic() + 90
        while not (BANNER_END in running.output() and _answers(f"{running.demo_url}/login")):
            assert process.poll() is None, f"up stopped on its own:\n{running.output()}"
            assert time.monotonic() < deadline, f"up did not come up:\n{running.output()}"
            time.sleep(0.2)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=45)
    assert process.returncode == 0, running.output()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_up_with_demo_serves_the_login_app_and_prints_its_url_and_accounts(up: Up) -> None:
    with httpx.Client(base_url=up.demo_url) as browser:
        csrf = browser.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
        signed_in = browser.post(
            "/login",
            data={"csrf": csrf, "username": "demo", "password": DEMO_PASSWORDS["demo"]},
            follow_redirects=True,
        )
    assert "Welcome, Dana Demo" in signed_in.text  # the service answered `bypass`
    assert up.demo_url in up.output()
    assert f"demo / {DEMO_PASSWORDS['demo']}" in up.output()


def test_up_prints_the_api_key_and_its_file_after_the_workers_are_ready(up: Up) -> None:
    lines = up.output().splitlines()
    key_line = next(i for i, line in enumerate(lines) if line.startswith("  API key    "))
    ready_line = next(i for i, line in enumerate(lines) if re.search(r"mfa-\S+@\S+ ready", line))

    assert ready_line < key_line
    assert f"saved in {up.data_dir / 'dev-api-key'}" in lines[key_line + 1]
    assert (up.data_dir / "dev-api-key").read_text().strip() == up.api_key()
    # Nothing but the demo's lines follow the banner while nobody uses the service.
    assert BANNER_END in lines[key_line:][:12]


def test_up_starts_the_workers_and_beat_without_their_banners(up: Up) -> None:
    output = up.output()

    for banner_text in ("[tasks]", "[queues]", "celery beat v", "Configuration ->", "-------"):
        assert banner_text not in output


def test_totp_codes_enrolled_through_the_demo_show_the_demo_firms_name(up: Up) -> None:
    with httpx.Client(
        base_url=up.api_url, headers={"Authorization": f"Bearer {up.api_key()}"}
    ) as api:
        user_id = new_user_id()
        api.put(f"/v1/users/{user_id}", json={"firm_id": "demo-firm"}).raise_for_status()
        enrolled = api.post(f"/v1/users/{user_id}/factors/totp").json()

    uri = urlsplit(enrolled["otpauth_uri"])
    assert parse_qs(uri.query)["issuer"] == ["Demo Firm"]
    assert uri.path == f"/Demo%20Firm:{user_id}"


def test_the_demo_serves_its_icon(up: Up) -> None:
    icon = httpx.get(f"{up.demo_url}/favicon.ico")

    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert ET.fromstring(icon.content).tag == "{http://www.w3.org/2000/svg}svg"  # noqa: S314


def test_a_sign_in_waiting_for_its_security_code_can_be_cancelled(up: Up) -> None:
    with httpx.Client(
        base_url=up.api_url, headers={"Authorization": f"Bearer {up.api_key()}"}
    ) as api:
        enrolled = api.post("/v1/users/admin/factors/totp").json()
        code = pyotp.TOTP(enrolled["secret"]).now()
        activate = f"/v1/users/admin/factors/{enrolled['factor_id']}/activate"
        api.post(activate, json={"code": code}).raise_for_status()
    with httpx.Client(base_url=up.demo_url, follow_redirects=True) as browser:
        csrf = browser.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
        password = {"username": "admin", "password": DEMO_PASSWORDS["admin"]}
        code_page = browser.post("/login", data={"csrf": csrf, **password})
        assert code_page.url.path == "/login/code"
        assert "Cancel and sign out" in code_page.text
        csrf = code_page.text.split('name="csrf" value="')[1].split('"')[0]

        cancelled = browser.post("/logout", data={"csrf": csrf})

        assert cancelled.url.path == "/login"
        assert browser.get("/login/code").url.path == "/login"  # the half sign-in is gone
