"""One conformance suite for every `SmsSender`: Twilio (real client, fake server) and the outbox.

The outbox is what development and most tests run on; each test here runs against both, so
the twin cannot drift from what the Twilio adapter does with a send.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.adapters.outbox import OutboxReader, OutboxSmsSender
from mfa_pipeline.adapters.twilio_sms import TwilioSmsSender
from mfa_pipeline.ports import SmsReceipt, SmsSender
from tests.fixtures.twilio import TWILIO_SID, TWILIO_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

PHONE = "+12015550123"
BODY = "Your verification code is 493817. It expires in 10 minutes. Never share it."
CALLBACK = "http://127.0.0.1:8000/v1/providers/twilio/status"


@dataclass(frozen=True)
class Delivered:
    to: str
    body: str
    status_callback: str | None


@dataclass(frozen=True)
class Backend:
    sender: SmsSender
    delivered: Callable[[], list[Delivered]]  # what reached the "phone", oldest first
    provider_ids: Callable[[], list[str]]


def twilio_backend(request: pytest.FixtureRequest) -> Backend:
    fake = request.getfixturevalue("fake_twilio")
    sender = TwilioSmsSender(TWILIO_SID, TWILIO_TOKEN, "+15017122661", api_base_url=fake.url)
    return Backend(
        sender=sender,
        delivered=lambda: [
            Delivered(m["To"], m["Body"], m.get("StatusCallback")) for m in list(fake.messages)
        ],
        provider_ids=lambda: [m["sid"] for m in list(fake.messages)],
    )


def outbox_backend(request: pytest.FixtureRequest) -> Backend:
    path: Path = request.getfixturevalue("tmp_path") / "outbox.jsonl"
    reader = OutboxReader(path)
    return Backend(
        sender=OutboxSmsSender(path),
        delivered=lambda: [
            Delivered(m["to"], m["body"], m["status_callback"])
            for m in reader.messages(channel="sms")
        ],
        provider_ids=lambda: [m["id"] for m in reader.messages(channel="sms")],
    )


@pytest.fixture(params=[twilio_backend, outbox_backend], ids=["twilio", "outbox"])
def backend(request: pytest.FixtureRequest) -> Backend:
    factory: Callable[[pytest.FixtureRequest], Backend] = request.param
    return factory(request)


def test_it_implements_the_port_with_the_same_signature(backend: Backend) -> None:
    assert isinstance(backend.sender, SmsSender)
    assert inspect.signature(type(backend.sender).send) == inspect.signature(SmsSender.send)


def test_a_send_returns_a_receipt_naming_the_delivered_message(backend: Backend) -> None:
    receipt = backend.sender.send(to=PHONE, body=BODY, status_callback=CALLBACK)

    assert isinstance(receipt, SmsReceipt)
    assert receipt.status in {"queued", "sent"}
    assert backend.provider_ids() == [receipt.provider_id]
    assert backend.delivered() == [Delivered(PHONE, BODY, CALLBACK)]


def test_without_a_status_callback_none_is_recorded(backend: Backend) -> None:
    backend.sender.send(to=PHONE, body=BODY)

    assert backend.delivered() == [Delivered(PHONE, BODY, None)]


def test_arguments_are_keyword_only(backend: Backend) -> None:
    send: Callable[..., SmsReceipt] = backend.sender.send
    with pytest.raises(TypeError):
        send(PHONE, BODY)
    assert backend.delivered() == []


def test_a_body_outside_ascii_arrives_unchanged(backend: Backend) -> None:
    text = "Votre code est 493817 — ne le partagez pas. 認証コード"

    backend.sender.send(to=PHONE, body=text)

    assert backend.delivered()[0].body == text


def test_every_send_is_a_new_message_with_its_own_id(backend: Backend) -> None:
    receipts = [backend.sender.send(to=PHONE, body=BODY) for _ in range(3)]

    assert [r.provider_id for r in receipts] == backend.provider_ids()
    assert len({r.provider_id for r in receipts}) == 3


def test_concurrent_sends_from_threads_all_arrive(backend: Backend) -> None:
    phones = sorted(f"+1201555{n:04d}" for n in range(12))
    receipts: list[SmsReceipt] = []
    lock = threading.Lock()

    def send(phone: str) -> None:
        receipt = backend.sender.send(to=phone, body=BODY)
        with lock:
            receipts.append(receipt)

    threads = [threading.Thread(target=send, args=(phone,)) for phone in phones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(d.to for d in backend.delivered()) == phones
    assert sorted(r.provider_id for r in receipts) == sorted(backend.provider_ids())
