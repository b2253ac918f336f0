"""Fault drill: the Redis of the challenge store and broker restarts while logins come in.

The test's own redis-server (never the session's, never the machine's) is stopped with
SIGTERM, which saves its data as a real restart does, and started again on the same port. A
load thread keeps asking for SMS challenges over HTTP the whole time. While Redis is away the
API answers 503 `unavailable` (with Retry-After) and readiness names Redis; enrollment data
in SQL reads as before. Afterwards the API and the `mfa-pipeline worker` process recover by
themselves: new challenges are created and delivered, and no number ever gets two SMS.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

import httpx
import pytest

from mfa_pipeline.api.main import app_for
from mfa_pipeline.bootstrap import bootstrap
from tests.drills.kit import drill_settings, enroll_sms_users, sms_per_number, wait_until_settled
from tests.fixtures.pipeline import MANAGE_KEY, ApiServer, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from mfa_pipeline.bootstrap import Container
    from mfa_pipeline.cli.embedded_redis import EmbeddedRedis
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.fixtures.worker_processes import WorkerProcess

pytestmark = pytest.mark.drill

USERS = 40
OUTAGE_SECONDS = 2.0


class LoginLoad:
    """A thread asking for one SMS challenge per user in turn, recording every answer."""

    def __init__(self, url: str, users: list[str]) -> None:
        self.users = users
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {MANAGE_KEY}"}, timeout=10
        )
        self.answers: list[tuple[float, str, int, dict[str, object]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="login-load")

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set() and index < len(self.users) * 5:
            user = self.users[index % len(self.users)]
            index += 1
            answer = self.client.post("/v1/challenges", json={"user_id": user, "factor": "sms"})
            self.answers.append((time.monotonic(), user, answer.status_code, answer.json()))
            time.sleep(0.05)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        self.client.close()

    def codes_since(self, moment: float) -> Counter[int]:
        return Counter(status for at, _, status, _ in self.answers if at >= moment)

    def created(self) -> dict[str, float]:
        """{challenge id: when} of every challenge the API answered 201 for."""
        return {
            str(body["challenge_id"]): at for at, _, status, body in self.answers if status == 201
        }


def assert_unavailable_while_down(probe: httpx.Client, user_id: str) -> None:
    refused = probe.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "unavailable"
    assert refused.headers["Retry-After"] == "1"
    ready = probe.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["checks"] == {"redis": "unavailable", "database": "ok"}
    user = probe.get(f"/v1/users/{user_id}")  # enrollment data lives in SQL: untouched
    assert user.status_code == 200
    assert [f["type"] for f in user.json()["factors"]] == ["sms"]


def assert_no_challenge_got_two_sms(
    container: Container, key_prefix: str, users: dict[str, str], fake: FakeTwilio
) -> None:
    """At most one SMS per challenge, whatever the restart did to tasks in flight.

    Counted against the challenges Redis holds: a request cut by the restart may have created
    a challenge and queued its SMS yet answered 503 (the API cannot tell a write that was lost
    from one whose reply was); the login page then simply asks again.
    """
    stored = Counter(
        users[str(container.redis.hget(key, "uid"))]
        for key in container.redis.scan_iter(match=f"{key_prefix}:*:ch:*", count=1000)
    )
    for number, received in sms_per_number(fake).items():
        assert received <= stored[number], number


def reconnected_or_exited(worker: WorkerProcess) -> bool:
    """True once the worker is consuming again; False if it exited instead."""
    wait_until(
        lambda: worker.process.poll() is not None or worker.output().count("Connected to") >= 2,
        timeout=15,
    )
    return worker.process.poll() is None


def test_a_redis_restart_under_load_answers_503_then_recovers_by_itself(
    tmp_path: Path,
    key_prefix: str,
    own_redis: EmbeddedRedis,
    fake_twilio: FakeTwilio,
    worker_processes: Callable[..., WorkerProcess],
) -> None:
    settings = drill_settings(
        tmp_path, own_redis.url, key_prefix, fake_twilio.url, limit_challenges_per_user="50/600"
    )
    users = enroll_sms_users(settings, USERS)
    worker = worker_processes(settings, queues="sms", concurrency=2)
    with contextlib.ExitStack() as stack:
        container = bootstrap(settings)
        stack.callback(container.close)
        server = ApiServer(app_for(container))
        server.start()
        stack.callback(server.stop)
        load = LoginLoad(server.url, list(users))
        load.start()
        stack.callback(load.stop)
        probe = stack.enter_context(
            httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {MANAGE_KEY}"}, timeout=10
            )
        )
        wait_until(lambda: load.codes_since(0)[201] >= 10)

        own_redis.stop()  # SIGTERM: Redis saves and exits, as in a restart
        down_at = time.monotonic()
        assert_unavailable_while_down(probe, next(iter(users)))
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        own_redis.start()
        up_at = time.monotonic()
        # Nobody restarts the API: it reconnects on its own.
        wait_until(lambda: load.codes_since(up_at)[201] >= 10, timeout=15)
        assert probe.get("/readyz").status_code == 200
        if not reconnected_or_exited(worker):
            # The worker reconnects on its own too, except when kombu trips over its own
            # connection while closing it ("Unrecoverable error"): then it exits, and its
            # supervisor (compose's `restart: unless-stopped`) starts it again, as here.
            worker = worker_processes(settings, queues="sms", concurrency=2)
        load.stop()

        during = Counter(s for at, _, s, _ in load.answers if down_at < at < up_at - 0.5)
        assert set(during) == {503}, during  # while down: a clear 503, never a 500
        assert 500 not in Counter(s for _, _, s, _ in load.answers)
        created_after = [cid for cid, at in load.created().items() if at > up_at]
        wait_until_settled(container, created_after, timeout=15)
        for challenge_id in created_after:
            challenge = container.ports.store.get(challenge_id)
            assert challenge is not None
            assert challenge.delivery.status.value == "sent", challenge
        assert_no_challenge_got_two_sms(container, key_prefix, users, fake_twilio)
