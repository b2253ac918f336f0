"""The result webhook: a final status reaches the login backend, signed, retried until taken."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from mfa_pipeline.services.webhooks import SIGNATURE_HEADER, verify_signature
from tests.e2e.test_login_flows import enroll_totp
from tests.fixtures.pipeline import new_user_id, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from tests.doubles.clock import FrozenClock

pytestmark = pytest.mark.usefixtures("worker")
SECRET = "webhook-secret-" + "s" * 16


class Receiver:
    """The login backend's endpoint: records what arrives, answers scripted statuses first."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []  # answered in order before 200s
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or "0"))
                receiver.received.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/mfa/results"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, Any]:
    return {"result_webhook_url": receiver.url, "result_webhook_secret": SECRET}


def login(api: httpx.Client, clock: FrozenClock) -> tuple[str, str]:
    user_id = new_user_id()
    api.put(f"/v1/users/{user_id}", json={"firm_id": "firm-test"})
    totp = enroll_totp(api, clock, user_id)
    created = api.post(
        "/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": totp.at(clock.now())}
    )
    assert created.json()["status"] == "verified"
    return user_id, created.json()["challenge_id"]


def test_a_verified_login_is_posted_signed_to_the_login_backend(
    api: httpx.Client, clock: FrozenClock, receiver: Receiver
) -> None:
    user_id, challenge_id = login(api, clock)
    wait_until(lambda: receiver.received)
    headers, body = receiver.received[0]
    assert verify_signature(SECRET, headers[SIGNATURE_HEADER], body, now=clock.now())
    assert not verify_signature(
        "another-secret-xxxxxxxx", headers[SIGNATURE_HEADER], body, now=clock.now()
    )
    assert not verify_signature(SECRET, headers[SIGNATURE_HEADER], body + b" ", now=clock.now())
    assert not verify_signature(SECRET, headers[SIGNATURE_HEADER], body, now=clock.now() + 301)
    event = json.loads(body)
    assert event == {
        "id": f"{challenge_id}:verified",
        "type": "challenge.finished",
        "challenge_id": challenge_id,
        "user_id": user_id,
        "factor": "totp",
        "status": "verified",
        "application": "manage",
    }


def test_a_failing_receiver_gets_the_same_event_again_until_it_takes_it(
    api: httpx.Client, clock: FrozenClock, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    _, challenge_id = login(api, clock)
    wait_until(lambda: len(receiver.received) >= 3)
    time.sleep(0.3)  # a fourth delivery would show up here
    ids = [json.loads(body)["id"] for _, body in receiver.received]
    assert ids == [f"{challenge_id}:verified"] * 3


def test_a_receiver_refusing_the_event_is_not_retried(
    api: httpx.Client, clock: FrozenClock, receiver: Receiver
) -> None:
    receiver.statuses = [400]
    login(api, clock)
    wait_until(lambda: receiver.received)
    time.sleep(0.5)
    assert len(receiver.received) == 1
