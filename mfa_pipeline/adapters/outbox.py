"""The development "phone": messages appended to a JSON-lines file that `mfa-pipeline outbox` reads.

Every line is one message: `{"id", "channel", "to", "created_at", ...}` plus what its channel
carries (`body` and `status_callback` for SMS; a push sender adds its `data` the same way), so
all outbox senders share one file and one reader. It holds real codes, so it is created
private (0600) and used only outside production.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from mfa_pipeline.ports import PushReceipt, PushSender, SmsReceipt, SmsSender

if TYPE_CHECKING:
    from pathlib import Path

# ASCII digits only: `\d` would also match other scripts' digits, which no code contains.
_CODE = re.compile(r"(?<![0-9])([0-9]{6})(?![0-9])")


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one message as one line, safely from several worker processes at once.

    The whole line goes out in one `write` on an `O_APPEND` descriptor: the kernel places each
    such write at the end of the file whole, so concurrent writers never interleave lines.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        written = os.write(fd, line)
    finally:
        os.close(fd)
    if written != len(line):  # a full disk; a second write could land after another writer's
        raise OSError(f"outbox write cut short ({written} of {len(line)} bytes)")


def outbox_id() -> str:
    """An id shaped like a provider's (prefix + 32 hex), unique across processes."""
    return "OB" + secrets.token_hex(16)


def utc_timestamp() -> str:
    """Now as the contract writes times: ISO 8601 UTC, `2026-11-28T10:00:00Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class OutboxSmsSender(SmsSender):
    """SMS twin of `TwilioSmsSender`: accepts every message; nothing leaves the machine."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def send(self, *, to: str, body: str, status_callback: str | None = None) -> SmsReceipt:
        message_id = outbox_id()
        append_record(
            self._path,
            {
                "id": message_id,
                "channel": "sms",
                "to": to,
                "body": body,
                "status_callback": status_callback,
                "created_at": utc_timestamp(),
            },
        )
        return SmsReceipt(provider_id=message_id, status="sent")


class OutboxReader:
    """What the outbox senders wrote: for `mfa-pipeline outbox`, tests and local logins."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def messages(
        self, channel: str | None = None, to: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Recorded messages matching the filters, oldest first; only the newest `limit`."""
        if limit is not None and limit <= 0:
            return []
        found: deque[dict[str, Any]] = deque(maxlen=limit)
        try:
            handle = self._path.open(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        with handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash or a full disk
                if not isinstance(record, dict):
                    continue
                if (channel is None or record.get("channel") == channel) and (
                    to is None or record.get("to") == to
                ):
                    found.append(record)
        return list(found)

    def latest_code(self, to: str) -> str | None:
        """The 6-digit code of the newest SMS to `to` that holds one."""
        for record in reversed(self.messages(channel="sms", to=to)):
            match = _CODE.search(str(record.get("body") or ""))
            if match:
                return match.group(1)
        return None


class OutboxPushSender(PushSender):
    """Push twin of `FcmPushSender`: the data message goes to the outbox, addressed by token.

    The device simulator (`mfa-pipeline device`) reads its pushes from here by its token.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def send(self, *, token: str, data: dict[str, str], ttl_seconds: int) -> PushReceipt:
        message_id = outbox_id()
        append_record(
            self._path,
            {
                "id": message_id,
                "channel": "push",
                "to": token,
                "data": data,
                "ttl_seconds": ttl_seconds,
                "created_at": utc_timestamp(),
            },
        )
        return PushReceipt(provider_id=message_id)
