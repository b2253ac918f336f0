"""The development "phone": messages appended to a JSON-lines file that `mfa-pipeline outbox` reads.

It holds real codes, so it is created private (0600) and used only outside production.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from mfa_pipeline.ports import SmsReceipt, SmsSender

if TYPE_CHECKING:
    from pathlib import Path

_CODE = re.compile(r"\b(\d{6})\b")


def append_record(path: Path, record: dict[str, Any]) -> None:
    """One write of one line on an O_APPEND descriptor: safe with several worker processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class OutboxSmsSender(SmsSender):
    def __init__(self, path: Path) -> None:
        self._path = path

    def send(self, *, to: str, body: str, status_callback: str | None = None) -> SmsReceipt:
        message_id = "OB" + secrets.token_hex(16)
        append_record(
            self._path,
            {
                "id": message_id,
                "channel": "sms",
                "to": to,
                "body": body,
                "status_callback": status_callback,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        return SmsReceipt(provider_id=message_id, status="sent")


class OutboxReader:
    def __init__(self, path: Path) -> None:
        self._path = path

    def messages(
        self, channel: str | None = None, to: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Recorded messages, oldest first; the newest `limit` when given."""
        if not self._path.exists():
            return []
        found = []
        with self._path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if (channel is None or record.get("channel") == channel) and (
                    to is None or record.get("to") == to
                ):
                    found.append(record)
        return found[-limit:] if limit else found

    def latest_code(self, to: str) -> str | None:
        for record in reversed(self.messages(channel="sms", to=to)):
            match = _CODE.search(str(record.get("body", "")))
            if match:
                return match.group(1)
        return None
