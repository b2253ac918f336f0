"""The real twilio and pyfcm clients, driven from many threads at once as a threads-pool
worker drives them, against the fake providers answering slowly and concurrently."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mfa_pipeline.adapters.fcm_push import FcmPushSender
from mfa_pipeline.adapters.twilio_sms import TwilioSmsSender
from tests.fixtures.twilio import TWILIO_SID, TWILIO_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.fakes.fake_fcm import FakeFcm
    from tests.fakes.fake_twilio import FakeTwilio

THREADS = 24


def run_together(count: int, target: Callable[[int], object]) -> list[BaseException]:
    """`target(i)` on `count` threads released at once; the exceptions they raised."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_one_twilio_sender_sends_from_many_threads_in_parallel_each_message_intact(
    fake_twilio: FakeTwilio,
) -> None:
    sender = TwilioSmsSender(
        TWILIO_SID, TWILIO_TOKEN, "+15005550006", api_base_url=fake_twilio.url, timeout=10
    )
    fake_twilio.delay = 0.3
    sessions: dict[int, int] = {}

    def send(i: int) -> None:
        sender.send(to=f"+1201555{i:04d}", body=f"Your verification code is {i:06d}.")
        sessions[i] = id(sender._client.http_client.session)

    assert run_together(THREADS, send) == []
    messages = fake_twilio.wait_for_messages(THREADS)
    assert sorted((m["To"], m["Body"]) for m in messages) == sorted(
        (f"+1201555{i:04d}", f"Your verification code is {i:06d}.") for i in range(THREADS)
    )
    assert fake_twilio.max_in_flight == THREADS  # all waited on the provider at once
    assert len(set(sessions.values())) == THREADS  # no HTTP session shared between threads


def test_one_fcm_sender_first_used_by_many_threads_at_once_sends_every_push(
    fake_fcm: FakeFcm, tmp_path: Path
) -> None:
    account = fake_fcm.write_service_account(tmp_path / "account.json")
    sender = FcmPushSender(account, api_base_url=fake_fcm.url, timeout=10)
    fake_fcm.delay = 0.3

    def send(i: int) -> None:
        sender.send(token=f"token-{i}", data={"challenge_id": f"c{i}"}, ttl_seconds=120)

    assert run_together(THREADS, send) == []
    pushes = fake_fcm.wait_for(THREADS)
    assert sorted(p["data"]["challenge_id"] for p in pushes) == sorted(
        f"c{i}" for i in range(THREADS)
    )
