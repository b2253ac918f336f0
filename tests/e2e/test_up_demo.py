"""`mfa-pipeline up --demo`: the service and the reference login app from one command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx

from mfa_pipeline.demo.passwords import DEMO_PASSWORDS
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from pathlib import Path


def test_up_with_demo_serves_the_login_app_and_prints_its_url_and_accounts(
    tmp_path: Path,
) -> None:
    api_port, demo_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFA_")}
    env["MFA_DATA_DIR"] = str(tmp_path / "data")
    command = [sys.executable, "-m", "mfa_pipeline.cli", "up", "--demo", "--concurrency", "1"]
    command += ["--port", str(api_port), "--demo-port", str(demo_port)]
    up = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{demo_port}/login", timeout=2)
                if page.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert up.poll() is None, "up stopped on its own"
            assert time.monotonic() < deadline, "the demo app did not answer"
            time.sleep(0.2)
        assert 'name="password"' in page.text
        with httpx.Client(base_url=f"http://127.0.0.1:{demo_port}") as browser:
            csrf = browser.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
            signed_in = browser.post(
                "/login",
                data={"csrf": csrf, "username": "demo", "password": DEMO_PASSWORDS["demo"]},
                follow_redirects=True,
            )
        assert "Welcome, Dana Demo" in signed_in.text  # the service answered `bypass`
    finally:
        up.send_signal(signal.SIGTERM)
        out, _ = up.communicate(timeout=45)
    banner = out.decode()
    assert f"http://127.0.0.1:{demo_port}" in banner
    assert f"demo / {DEMO_PASSWORDS['demo']}" in banner
    assert up.returncode == 0
