"""Fault drill: the Redis of the challenge store and broker restarts while logins come in.

The test's own redis-server (never the session's, never the machine's) is stopped with
SIGTERM, which saves its data as a real restart does, and started again on the same port. A
load thread keeps asking for SMS challenges over HTTP the whole time. While Redis is away the
API answers 503 `unavailable` (with Retry-After) and readiness names Redis; enrollment data
in SQL reads as before. Afterwards the API and the `mfa-pipeline worker` process recover by
themselves: new challenges are created and delivered, and no number ever gets two SMS.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

import httpx
import pytest

from mfa_pipeline.api.app import create_app
from mfa_pipeline.bootstrap import bootstrap
from mfa_pipeline.embedded import EmbeddedRedis
from tests.drills.kit import drill_settings, enroll_sms_users, sms_per_number, wait_until_settled
from tests.fixtures.pipeline import MANAGE_KEY, ApiServer, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

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

    def created(self) -> dict[str, str]:
        return {
            str(body["challenge_id"]): user
            for _, user, status, body in self.answers
            if status == 201  # noqa: PLR2004
        }


def test_a_redis_restart_under_load_answers_503_then_recovers_by_itself(
    tmp_path: Path,
    key_prefix: str,
    fake_twilio: FakeTwilio,
    worker_processes: Callable[..., WorkerProcess],
) -> None:
    own_redis = EmbeddedRedis(tmp_path, persist=True, binary=shutil.which("redis-server"))
    own_redis.start()
    server: ApiServer | None = None
    load: LoginLoad | None = None
    container = None
    try:
        settings = drill_settings(
            tmp_path, own_redis.url, key_prefix, fake_twilio.url, limit_challenges_per_user="50/600"
        )
        users = enroll_sms_users(settings, USERS)
        container = bootstrap(settings)
        server = ApiServer(create_app(container))
        server.start()
        worker_processes(settings, queues="sms", concurrency=2)
        load = LoginLoad(server.url, list(users))
        load.start()
        wait_until(lambda: load.codes_since(0)[201] >= 10)

        own_redis.stop()  # SIGTERM: Redis saves and exits, as in a restart
        down_at = time.monotonic()
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {MANAGE_KEY}"}, timeout=10
        ) as probe:
            refused = probe.post(
                "/v1/challenges", json={"user_id": next(iter(users)), "factor": "sms"}
            )
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "unavailable"
            assert refused.headers["Retry-After"] == "1"
            ready = probe.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"]["checks"] == {"redis": "unavailable", "database": "ok"}
            user = probe.get(f"/v1/users/{next(iter(users))}")
            assert user.status_code == 200
            assert [f["type"] for f in user.json()["factors"]] == ["sms"]
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))

            own_redis.start()
            up_at = time.monotonic()
            # Nobody restarts the API or the worker: both reconnect on their own.
            wait_until(lambda: load.codes_since(up_at)[201] >= 10, timeout=15)
            assert probe.get("/readyz").status_code == 200
        load.stop()

        during = Counter(s for at, _, s, _ in load.answers if down_at < at < up_at - 0.5)
        assert set(during) == {503}, during  # while down: a clear 503, never a 500
        assert 500 not in Counter(s for _, _, s, _ in load.answers)  # noqa: PLR2004

        created = load.created()
        created_after = [
            str(body["challenge_id"])
            for at, _, status, body in load.answers
            if status == 201 and at > up_at  # noqa: PLR2004
        ]
        wait_until_settled(container, created_after, timeout=15)
        for challenge_id in created_after:
            challenge = container.store.get(challenge_id)
            assert challenge is not None
            assert challenge.delivery.status.value == "sent", challenge
        # At most one SMS per challenge, whatever the restart did to tasks in flight.
        per_number = sms_per_number(fake_twilio)
        challenges_per_number = Counter(users[user] for user in created.values())
        for number, received in per_number.items():
            assert received <= challenges_per_number[number]
    finally:
        if load is not None:
            load.stop()
        if server is not None:
            server.stop()
        if container is not None:
            container.close()
        own_redis.stop()
