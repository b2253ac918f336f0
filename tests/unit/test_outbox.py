"""The outbox: one private JSON-lines file that every outbox sender appends to and one reader."""

from __future__ import annotations

import json
import multiprocessing
import re
import stat
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.adapters.outbox import OutboxReader, OutboxSmsSender, append_record

if TYPE_CHECKING:
    from pathlib import Path

PHONE = "+12015550123"
OTHER_PHONE = "+12015550199"
CALLBACK = "http://127.0.0.1:8000/v1/providers/twilio/status"


def body(code: str) -> str:
    return f"Your verification code is {code}. It expires in 10 minutes. Never share it."


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "outbox.jsonl"


@pytest.fixture
def sender(path: Path) -> OutboxSmsSender:
    return OutboxSmsSender(path)


@pytest.fixture
def reader(path: Path) -> OutboxReader:
    return OutboxReader(path)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def push_record(to: str) -> dict[str, object]:
    """What a push outbox sender writes to the same file."""
    return {
        "id": "OB" + "f" * 32,
        "channel": "push",
        "to": to,
        "data": {"challenge_id": "ch_1", "number_choices": ["12", "34", "56"]},
        "created_at": "2026-11-28T10:00:00Z",
    }


# --- writing ---------------------------------------------------------------------------------


def test_a_sent_sms_is_one_json_line_with_the_record_fields(
    sender: OutboxSmsSender, path: Path
) -> None:
    receipt = sender.send(to=PHONE, body=body("123456"), status_callback=CALLBACK)

    [record] = lines(path)
    assert record == {
        "id": receipt.provider_id,
        "channel": "sms",
        "to": PHONE,
        "body": body("123456"),
        "status_callback": CALLBACK,
        "created_at": record["created_at"],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(record["created_at"]))
    assert re.fullmatch(r"OB[0-9a-f]{32}", receipt.provider_id)
    assert receipt.status == "sent"


def test_the_file_is_created_private_along_with_its_directory(
    sender: OutboxSmsSender, path: Path
) -> None:
    assert not path.parent.exists()

    sender.send(to=PHONE, body=body("123456"))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_messages_are_appended_never_rewritten(sender: OutboxSmsSender, path: Path) -> None:
    ids = [sender.send(to=PHONE, body=body(f"00000{n}")).provider_id for n in range(3)]

    assert [record["id"] for record in lines(path)] == ids
    assert len(set(ids)) == 3


def test_a_body_outside_ascii_survives_the_round_trip(
    sender: OutboxSmsSender, reader: OutboxReader
) -> None:
    text = "Votre code est 123456 — ne le partagez pas. 認証コード"

    sender.send(to=PHONE, body=text)

    assert reader.messages()[0]["body"] == text


def _append_many(path: Path, writer: int, count: int) -> None:
    """Run in a separate process: one worker's share of the concurrent appends."""
    sender = OutboxSmsSender(path)
    for n in range(count):
        # Long lines (beyond PIPE_BUF) show the whole-line write holds for any size.
        sender.send(to=f"+1201555{writer:04d}", body=f"{writer}:{n}:" + "x" * 8192)


def test_several_processes_append_whole_lines(path: Path, reader: OutboxReader) -> None:
    writers, count = 4, 50
    # spawn: a fork of the multi-threaded test process could inherit a held lock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=writers, mp_context=context) as pool:
        for done in [pool.submit(_append_many, path, w, count) for w in range(writers)]:
            done.result(timeout=60)

    bodies = {record["body"].split(":x")[0] for record in reader.messages()}
    assert len(path.read_text(encoding="utf-8").splitlines()) == writers * count
    assert bodies == {f"{w}:{n}" for w in range(writers) for n in range(count)}


# --- reading ---------------------------------------------------------------------------------


def test_a_missing_outbox_reads_as_empty(reader: OutboxReader) -> None:
    assert reader.messages() == []
    assert reader.latest_code(PHONE) is None


def test_messages_come_oldest_first_and_limit_keeps_the_newest(
    sender: OutboxSmsSender, reader: OutboxReader
) -> None:
    for n in range(5):
        sender.send(to=PHONE, body=body(f"11111{n}"))

    assert [m["body"] for m in reader.messages()] == [body(f"11111{n}") for n in range(5)]
    assert [m["body"] for m in reader.messages(limit=2)] == [body("111113"), body("111114")]
    assert reader.messages(limit=0) == []


def test_messages_filter_by_recipient_and_channel(
    sender: OutboxSmsSender, reader: OutboxReader, path: Path
) -> None:
    sender.send(to=PHONE, body=body("222222"))
    sender.send(to=OTHER_PHONE, body=body("333333"))
    append_record(path, push_record(PHONE))

    assert [m["body"] for m in reader.messages(to=OTHER_PHONE)] == [body("333333")]
    assert [m["channel"] for m in reader.messages(to=PHONE)] == ["sms", "push"]
    assert [m["channel"] for m in reader.messages(channel="push")] == ["push"]
    assert len(reader.messages(channel="sms")) == 2
    assert reader.messages(channel="sms", to=PHONE, limit=1)[0]["body"] == body("222222")


def test_a_broken_or_foreign_line_is_skipped(
    sender: OutboxSmsSender, reader: OutboxReader, path: Path
) -> None:
    sender.send(to=PHONE, body=body("444444"))
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "cut short by a cra\n')
        handle.write("[1, 2, 3]\n")
        handle.write("\n")
    sender.send(to=PHONE, body=body("555555"))

    assert [m["body"] for m in reader.messages()] == [body("444444"), body("555555")]


# --- latest_code -----------------------------------------------------------------------------


def test_latest_code_is_the_code_of_the_newest_sms_to_that_number(
    sender: OutboxSmsSender, reader: OutboxReader
) -> None:
    sender.send(to=PHONE, body=body("123456"))
    sender.send(to=PHONE, body=body("654321"))
    sender.send(to=OTHER_PHONE, body=body("999999"))

    assert reader.latest_code(PHONE) == "654321"
    assert reader.latest_code(OTHER_PHONE) == "999999"
    assert reader.latest_code("+12015550000") is None


def test_latest_code_skips_messages_without_a_code(
    sender: OutboxSmsSender, reader: OutboxReader, path: Path
) -> None:
    sender.send(to=PHONE, body=body("123456"))
    sender.send(to=PHONE, body="Your factor was removed.")
    append_record(path, push_record(PHONE))

    assert reader.latest_code(PHONE) == "123456"


@pytest.mark.parametrize(
    "text",
    [
        "Order 1234567 shipped.",  # seven digits are not a code
        "Call 12345.",
        "Code ١٢٣٤٥٦.",  # Arabic-Indic digits: no code the service sends
    ],
)
def test_latest_code_finds_only_six_ascii_digits(
    sender: OutboxSmsSender, reader: OutboxReader, text: str
) -> None:
    sender.send(to=PHONE, body=text)

    assert reader.latest_code(PHONE) is None
