"""The SMS path end to end with RabbitMQ as the broker (MFA_BROKER_URL=amqp://...).

RabbitMQ is the machine's own (127.0.0.1:5672, guest/guest); the test makes a vhost of its own
with `rabbitmqctl` and deletes it at the end, so parallel runs never share a queue. Without a
reachable RabbitMQ, or without `rabbitmqctl` to make the vhost, it is skipped and says why.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.test_login_flows import create_user, enroll_sms, last_code
from tests.fixtures.pipeline import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import httpx

    from mfa_pipeline.config import Settings
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.worker_processes import WorkerProcess

AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672


def rabbitmqctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    assert ctl is not None
    done = subprocess.run(
        [ctl, "-q", *args], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A broker URL on a vhost made for this test alone, deleted afterwards."""
    try:
        socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=2).close()
    except OSError:
        pytest.skip(f"RabbitMQ is not reachable at {AMQP_HOST}:{AMQP_PORT}")
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: it makes the test's own vhost")
    vhost = f"mfa-test-{uuid.uuid4().hex[:12]}"
    try:
        rabbitmqctl("add_vhost", vhost)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"rabbitmqctl cannot add a vhost here: {exc.stderr.strip()[:200]}")
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def settings_overrides(amqp_url: str) -> dict[str, Any]:
    return {"broker_url": amqp_url, "sms_retry_backoff_seconds": 0.1}


def queue_types(broker_url: str) -> dict[str, str]:
    vhost = broker_url.rsplit("/", 1)[1]
    rows = rabbitmqctl("list_queues", "-p", vhost, "name", "type", "--no-table-headers")
    return dict(line.split("\t")[:2] for line in rows.splitlines() if "\t" in line)


def test_an_sms_login_through_rabbitmq_quorum_queues_retries_delivers_and_verifies(
    api: httpx.Client,
    fake_twilio: FakeTwilio,
    settings: Settings,
    worker_processes: Callable[..., WorkerProcess],
    amqp_url: str,
) -> None:
    # A real `mfa-pipeline worker` on every queue (a thread worker lingers ~10 s on AMQP).
    worker = worker_processes(settings, queues="sms,push,webhooks,sweeps", concurrency=2)
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    # The first send meets a provider outage: the retry's countdown travels through
    # RabbitMQ's native delayed delivery (quorum queues cannot hold ETA tasks back).
    fake_twilio.fail_next(1, status=503)
    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"})
    assert created.status_code == 201, created.text
    challenge_id = created.json()["challenge_id"]
    code = last_code(fake_twilio, 2)
    state = wait_until(
        lambda: (
            (s := api.get(f"/v1/challenges/{challenge_id}").json())["delivery"]["status"] == "sent"
            and s
        )
    )
    assert state["delivery"]["attempts"] == 2
    assert api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code}).status_code == 200
    assert len(fake_twilio.messages) == 2  # the enrollment code and one login code

    assert "transport:   amqp://" in worker.output()
    assert "not supported with native delayed delivery" not in worker.output()
    types = queue_types(amqp_url)
    ours = ("sms", "push", "webhooks", "sweeps", "celery_delayed_0")
    assert {name: types.get(name) for name in ours} == dict.fromkeys(ours, "quorum")
