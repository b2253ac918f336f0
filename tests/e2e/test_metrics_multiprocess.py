"""`/metrics` sums every process: two API processes and a worker pool of two, as deployed.

The roles run as `mfa-pipeline api --workers 2` and `mfa-pipeline worker --concurrency 2`
subprocesses, each left to choose the metrics directory under the data dir. Challenges are
counted in whichever API process took the request, send latencies in the worker's children;
a scrape of either API process reports the sum.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx

from tests.e2e.test_login_flows import create_user, enroll_sms
from tests.e2e.test_metrics import value
from tests.fixtures.pipeline import MANAGE_KEY, wait_until
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mfa_pipeline.config import Settings
    from tests.fakes.fake_twilio import FakeTwilio


def role_environment(settings: Settings) -> dict[str, str]:
    """The test's settings as the `MFA_*` variables a deployed process reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MFA_", "PROMETHEUS_"))}
    redis_url = settings.redis_url or ""
    env.update(
        {
            "MFA_ENV": "test",
            "MFA_LOG_LEVEL": "WARNING",
            "MFA_DATA_DIR": str(settings.data_dir),
            "MFA_REDIS_URL": redis_url,
            # A broker database of its own: no other test's queued task reaches these workers.
            "MFA_BROKER_URL": redis_url.rsplit("/", 1)[0] + "/3",
            "MFA_DATABASE_URL": settings.effective_database_url,
            "MFA_KEY_PREFIX": settings.key_prefix,
            "MFA_API_KEYS": ",".join(settings.api_keys),
            "MFA_ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
            "MFA_SMS_PROVIDER": "twilio",
            "MFA_TWILIO_ACCOUNT_SID": settings.twilio_account_sid or "",
            "MFA_TWILIO_AUTH_TOKEN": settings.twilio_auth_token or "",
            "MFA_TWILIO_FROM": settings.twilio_from or "",
            "MFA_TWILIO_API_BASE_URL": settings.twilio_api_base_url or "",
        }
    )
    return env


class Roles:
    """Subprocesses of `mfa-pipeline`, stopped with SIGTERM (killed if they linger)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> None:
        command = [sys.executable, "-m", "mfa_pipeline.cli", *args]
        self.processes.append(subprocess.Popen(command, env=self.env))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def roles(settings: Settings) -> Iterator[Roles]:
    running = Roles(role_environment(settings))
    try:
        yield running
    finally:
        running.stop()


def test_a_scrape_of_any_api_process_sums_api_and_worker_processes(
    settings: Settings, fake_twilio: FakeTwilio
) -> None:
    port = free_port()
    with roles(settings) as running:
        running.start("api", "--port", str(port), "--workers", "2")
        running.start("worker", "--queues", "sms", "--concurrency", "2")
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {MANAGE_KEY}"},
            timeout=10,
        ) as api:
            # Three Python processes importing the service: on a busy machine (a parallel
            # suite, other work) that took over 30 s. Waiting longer loosens no check.
            wait_until(lambda: _up(api), timeout=90, interval=0.2)
            user_id = create_user(api)
            enroll_sms(api, fake_twilio, user_id)
            for _ in range(3):
                created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"})
                assert created.status_code == 201, created.text
            fake_twilio.wait_for_messages(4, timeout=20)

            def summed() -> str | None:
                text = api.get("/metrics").text
                latency = value(text, 'mfa_delivery_latency_seconds_count{channel="sms"}')
                return text if latency == 4 else None

            # The worker writes its files a moment after the provider answered.
            text = wait_until(summed, timeout=10)
            sms_manage = 'application="manage",factor="sms"'
            assert value(text, f"mfa_challenges_created_total{{{sms_manage}}}") == 3
            assert value(text, 'mfa_queue_depth{queue="sms"}') == 0
            assert value(text, "mfa_long_poll_waiters") == 0
        assert (settings.data_dir / "metrics").is_dir()


def _up(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False
