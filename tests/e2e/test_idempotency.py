"""`Idempotency-Key` on `POST /v1/challenges` and `POST /v1/users/{id}/factors/sms`.

Over real HTTP to the API, a real worker and the fake Twilio: a repeat answers the first
response and sends nothing; another body is refused; a repeat while the first runs is 409; bad
keys are 422; keys are per application; and a request whose reply was lost after the challenge
was created (a Redis restart cutting it, answered 503) is completed by its retry, never by a
second challenge or a second SMS.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mfa_pipeline.api.main import app_for
from mfa_pipeline.client import MfaClient, RetryPolicy
from mfa_pipeline.domain.errors import UnavailableError
from tests.e2e.test_login_flows import PHONE_E164, create_user, enroll_sms, last_code
from tests.fixtures.pipeline import GROW_KEY, MANAGE_KEY, ApiServer, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mfa_pipeline.bootstrap import Container
    from tests.fakes.fake_twilio import FakeTwilio

pytestmark = pytest.mark.usefixtures("worker")

KEY = "Idempotency-Key"


def sms_login(user_id: str, ip: str = "198.51.100.7") -> dict[str, Any]:
    return {"user_id": user_id, "factor": "sms", "context": {"ip": ip}}


def sms_user(api: httpx.Client, fake: FakeTwilio) -> str:
    """A user with an active SMS factor on `PHONE_E164` (its confirmation is SMS number one)."""
    user_id = create_user(api)
    enroll_sms(api, fake, user_id)
    return user_id


def sms_to(fake: FakeTwilio, number: str = PHONE_E164) -> int:
    return sum(1 for m in fake.messages if m["To"] == number)


def drain(api: httpx.Client, fake: FakeTwilio, user_id: str) -> None:
    """A keyless SMS login sent last, waited for: any extra SMS queued before it has arrived."""
    before = len(fake.messages)
    sentinel = api.post("/v1/challenges", json=sms_login(user_id))
    assert sentinel.status_code == 201, sentinel.text
    fake.wait_for_messages(before + 1)
    cid = sentinel.json()["challenge_id"]
    wait_until(lambda: api.get(f"/v1/challenges/{cid}").json()["delivery"]["status"] == "sent")


@contextlib.contextmanager
def reply_lost_after_create(container: Container, times: int = 1) -> Iterator[list[str]]:
    """The store creates the challenge, then the connection drops before its reply: 503.

    What a Redis restart at the wrong moment does (tests/drills/test_redis_restart.py).
    """
    real = container.ports.store.create
    created: list[str] = []

    def create(challenge: Any, **kwargs: Any) -> None:
        real(challenge, **kwargs)
        if len(created) < times:
            created.append(challenge.challenge_id)
            raise UnavailableError("The challenge store is unavailable; try again.")

    container.ports.store.create = create  # type: ignore[method-assign]
    try:
        yield created
    finally:
        del container.ports.store.create


def test_a_repeated_challenge_request_answers_the_first_response_and_sends_one_sms(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = sms_user(api, fake_twilio)
    first = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: "login-1"})
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: "login-1"})
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    drain(api, fake_twilio, user_id)
    assert sms_to(fake_twilio) == 3  # enrollment, the login (once), the sentinel


def test_the_same_key_with_another_body_is_refused_and_sends_nothing(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = sms_user(api, fake_twilio)
    first = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: "login-2"})
    assert first.status_code == 201
    other = api.post(
        "/v1/challenges", json=sms_login(user_id, ip="203.0.113.5"), headers={KEY: "login-2"}
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    another_user = create_user(api)
    moved = api.post("/v1/challenges", json=sms_login(another_user), headers={KEY: "login-2"})
    assert moved.status_code == 422
    assert moved.json()["error"]["code"] == "idempotency_key_reused"
    drain(api, fake_twilio, user_id)
    assert sms_to(fake_twilio) == 3  # enrollment, the first login, the sentinel


@pytest.fixture
def second_api(container: Container) -> Iterator[ApiServer]:
    """Another API server on the same stores: a second API process of the deployment."""
    server = ApiServer(app_for(container))
    server.start()
    yield server
    server.stop()


def test_a_repeat_while_the_first_request_runs_is_409_request_in_progress(
    api: httpx.Client,
    api_server: ApiServer,
    second_api: ApiServer,
    container: Container,
    fake_twilio: FakeTwilio,
) -> None:
    user_id = sms_user(api, fake_twilio)
    entered, release = threading.Event(), threading.Event()
    real_issue = container.services.challenges.issue

    def slow_issue(**kwargs: Any) -> Any:  # the first request, held inside its creation
        entered.set()
        release.wait(10)
        return real_issue(**kwargs)

    container.services.challenges.issue = slow_issue  # type: ignore[method-assign]
    answers: list[httpx.Response] = []
    auth = {"Authorization": f"Bearer {MANAGE_KEY}"}

    def first_request() -> None:
        with httpx.Client(base_url=api_server.url, headers=auth, timeout=20) as client:
            answers.append(
                client.post("/v1/challenges", json=sms_login(user_id), headers={KEY: "login-3"})
            )

    runner = threading.Thread(target=first_request)
    runner.start()
    try:
        assert entered.wait(10)
        # The repeat reaches another API process while the first still runs.
        with httpx.Client(base_url=second_api.url, headers=auth, timeout=20) as client:
            busy = client.post("/v1/challenges", json=sms_login(user_id), headers={KEY: "login-3"})
    finally:
        release.set()
        runner.join(20)
        del container.services.challenges.issue
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "request_in_progress"
    assert answers[0].status_code == 201
    later = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: "login-3"})
    assert later.headers["Idempotent-Replayed"] == "true"
    assert later.json()["challenge_id"] == answers[0].json()["challenge_id"]


@pytest.mark.parametrize(
    "key",
    [b"", b"k" * 256, "cl\u00e9".encode(), b"tab\there"],
    ids=["empty", "256 characters", "non-ASCII", "control character"],
)
def test_a_bad_idempotency_key_is_422_and_creates_nothing(
    api: httpx.Client, fake_twilio: FakeTwilio, key: bytes
) -> None:
    user_id = sms_user(api, fake_twilio)
    refused = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: key})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == KEY
    enrolled = api.post(
        f"/v1/users/{create_user(api)}/factors/sms",
        json={"phone": "+12015550199"},
        headers={KEY: key},
    )
    assert enrolled.status_code == 422
    drain(api, fake_twilio, user_id)
    assert sms_to(fake_twilio) == 2  # enrollment and the sentinel: the refused login sent none
    assert sms_to(fake_twilio, "+12015550199") == 0


def test_a_key_of_255_printable_characters_is_accepted(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = sms_user(api, fake_twilio)
    key = "".join(chr(33 + i % 94) for i in range(255))  # header values cannot start with a space
    first = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: key})
    again = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: key})
    assert first.status_code == again.status_code == 201
    assert again.json()["challenge_id"] == first.json()["challenge_id"]


def test_keys_are_per_application_one_never_replays_another_s_answer(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = sms_user(api, fake_twilio)
    mine = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: "shared-key"})
    theirs = api.post(
        "/v1/challenges",
        json=sms_login(user_id),
        headers={KEY: "shared-key", "Authorization": f"Bearer {GROW_KEY}"},
    )
    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["challenge_id"] != mine.json()["challenge_id"]


def test_a_repeated_sms_enrollment_answers_the_first_and_texts_the_number_once(
    api: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    body = {"phone": "+1 201 555 0142"}
    first = api.post(f"/v1/users/{user_id}/factors/sms", json=body, headers={KEY: "enroll-1"})
    again = api.post(f"/v1/users/{user_id}/factors/sms", json=body, headers={KEY: "enroll-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    factors = api.get(f"/v1/users/{user_id}/factors").json()
    assert len([f for f in factors if f["type"] == "sms"]) == 1
    other = api.post(
        f"/v1/users/{user_id}/factors/sms",
        json={"phone": "+1 201 555 0143"},
        headers={KEY: "enroll-1"},
    )
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    drain_user = create_user(api)
    enroll_sms(api, fake_twilio, drain_user)
    drain(api, fake_twilio, drain_user)
    assert sms_to(fake_twilio, "+12015550142") == 1


def test_a_retry_after_a_503_that_created_the_challenge_gets_it_and_one_sms(
    api: httpx.Client, container: Container, fake_twilio: FakeTwilio
) -> None:
    user_id = sms_user(api, fake_twilio)
    with reply_lost_after_create(container) as created:
        cut = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: "login-4"})
        assert cut.status_code == 503
        retried = api.post("/v1/challenges", json=sms_login(user_id), headers={KEY: "login-4"})
    assert retried.status_code == 201, retried.text
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["challenge_id"] == created[0]
    code = last_code(fake_twilio, 2)
    verified = api.post(f"/v1/challenges/{created[0]}/verify", json={"code": code})
    assert verified.status_code == 200, verified.text
    drain(api, fake_twilio, user_id)
    assert sms_to(fake_twilio) == 3  # enrollment, the login (once), the sentinel


def test_a_retried_sms_enrollment_cut_after_creation_can_still_be_confirmed(
    api: httpx.Client, container: Container, fake_twilio: FakeTwilio
) -> None:
    user_id = create_user(api)
    body = {"phone": "+1 201 555 0144"}
    with reply_lost_after_create(container) as created:
        cut = api.post(f"/v1/users/{user_id}/factors/sms", json=body, headers={KEY: "enroll-2"})
        assert cut.status_code == 503
        retried = api.post(f"/v1/users/{user_id}/factors/sms", json=body, headers={KEY: "enroll-2"})
    assert retried.status_code == 201, retried.text
    assert retried.json()["challenge_id"] == created[0]
    code = last_code(fake_twilio, 1)
    factor_id = retried.json()["factor_id"]
    activated = api.post(f"/v1/users/{user_id}/factors/{factor_id}/activate", json={"code": code})
    assert activated.status_code == 200, activated.text
    assert sms_to(fake_twilio, "+12015550144") == 1


def test_the_python_client_retries_a_503_with_its_key_and_the_user_gets_one_sms(
    api: httpx.Client, api_server: ApiServer, container: Container, fake_twilio: FakeTwilio
) -> None:
    user_id = sms_user(api, fake_twilio)
    fast = RetryPolicy(max_retries=3, backoff=0.01, max_backoff=0.05)
    with (
        MfaClient(api_server.url, api_key=MANAGE_KEY, retry=fast) as mfa,
        reply_lost_after_create(container) as created,
    ):
        challenge = mfa.create_challenge(user_id, factor="sms")
    assert challenge.challenge_id == created[0]
    drain(api, fake_twilio, user_id)
    assert sms_to(fake_twilio) == 3  # enrollment, the login (once), the sentinel
