"""A local stand-in for Twilio's Messages API, speaking its wire protocol on 127.0.0.1.

The real `twilio` client is pointed at it (`client.api.base_url`), so requests, auth, form
encoding and error JSON all go through the same code as in production.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC\w+)/Messages\.json$")


@dataclass
class ScriptedFailure:
    status: int
    code: int | None
    message: str


class FakeTwilio:
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict[str, Any]] = []
        self.requests_count = 0
        self.delay = 0.0
        self._failures: list[ScriptedFailure] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(
        self, count: int, *, status: int, code: int | None = None, message: str = "Error"
    ) -> None:
        with self._changed:
            self._failures += [ScriptedFailure(status, code, message)] * count

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"{len(self.messages)} of {count} messages arrived")
            return list(self.messages)

    def _take(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._changed:
            self.requests_count += 1
            if self._failures:
                failure = self._failures.pop(0)
                return failure.status, {
                    "code": failure.code,
                    "message": failure.message,
                    "more_info": f"https://www.twilio.com/docs/errors/{failure.code}",
                    "status": failure.status,
                }
            sid = "SM" + secrets.token_hex(16)
            record = {**form, "sid": sid, "received_at": time.monotonic()}
            self.messages.append(record)
            self._changed.notify_all()
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return 201, {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "date_created": now,
            "date_updated": now,
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }

    def _authorized(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Twilio's API does
            disable_nagle_algorithm = True  # headers and body go out without a delayed-ACK stall

            def log_message(self, *_: object) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if fake.delay:
                    time.sleep(fake.delay)
                match = _MESSAGES.match(self.path)
                if match is None:
                    self._answer(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                if match["sid"] != fake.account_sid or not fake._authorized(
                    self.headers.get("Authorization")
                ):
                    self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    return
                self._answer(*fake._take(form))

        return Handler
