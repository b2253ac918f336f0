"""A local stand-in for Twilio's Messages API, speaking its wire protocol on 127.0.0.1.

The real `twilio` client is pointed at it (`client.api.base_url`), so requests, auth, form
encoding and error JSON all go through the same code as in production. Tests script its
answers (`fail_next`, `delay`) and read what it accepted (`messages`, `wait_for_messages`).

A message created with a `StatusCallback` URL gets Twilio's delivery reports afterwards, from
another thread, as Twilio posts them: form-encoded, signed in `X-Twilio-Signature` with the auth
token (`callback_statuses` scripts which ones, in order; `callbacks` records the answers).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlencode
from urllib.request import Request, urlopen

from tests.fakes.loopback import JsonHandler, LoopbackServer

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")

# Twilio's own codes for errors that are about HTTP rather than the message.
_DEFAULT_CODES = {401: 20003, 403: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}
_REASONS = {
    400: "Bad request",
    401: "Authenticate",
    403: "Forbidden",
    404: "The requested resource was not found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class ScriptedFailure:
    status: int
    code: int | None
    message: str


def twilio_error(
    status: int, code: int | None = None, message: str | None = None
) -> dict[str, Any]:
    """Twilio's JSON error shape (REST API v2010)."""
    code = code if code is not None else _DEFAULT_CODES.get(status, status)
    return {
        "code": code,
        "message": message or _REASONS.get(status, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class FakeTwilio(LoopbackServer):
    """Twilio's `POST /2010-04-01/Accounts/{sid}/Messages.json` on a free loopback port."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict[str, Any]] = []  # accepted, as form fields + sid + received_at
        self.requests_count = 0  # every POST, refused ones included
        self.in_flight = 0  # requests being answered now
        self.max_in_flight = 0  # the most ever answered at once: how many a client overlaps
        self.delay = 0.0  # seconds to wait before answering (client timeouts)
        # Delivery reports posted to each message's StatusCallback, in this order.
        self.callback_statuses: list[str] = ["sent", "delivered"]
        self.callback_error_code: str | None = None  # sent along with undelivered/failed
        self.callbacks: list[tuple[str, int]] = []  # (MessageStatus, HTTP status answered)
        self._failures: list[ScriptedFailure] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        super().__init__(self._handler(), "fake-twilio")

    def stop(self) -> None:
        """Stop serving; a request sleeping through `delay` is woken and answered at once."""
        self._stopping.set()
        super().stop()

    def fail_next(
        self, count: int, *, status: int, code: int | None = None, message: str | None = None
    ) -> None:
        """Answer the next `count` authenticated requests with this error (in order, FIFO).

        `code` defaults to Twilio's code for the status (20429, 20500, ...).
        """
        with self._changed:
            self._failures += [ScriptedFailure(status, code, message or "")] * count

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until `count` messages were accepted; a copy of them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"{len(self.messages)} of {count} messages arrived")
            return list(self.messages)

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> list[tuple[str, int]]:
        """Block until `count` status callbacks were answered; a copy of them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.callbacks) >= count, timeout):
                raise AssertionError(f"{len(self.callbacks)} of {count} callbacks answered")
            return list(self.callbacks)

    # --- status callbacks ----------------------------------------------------------------

    def _report(self, message: dict[str, Any]) -> None:
        """Post each scripted status for `message` to its StatusCallback, signed."""
        for status in list(self.callback_statuses):
            form = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "From": message["From"],
                "To": message["To"],
                "MessageSid": message["sid"],
                "SmsSid": message["sid"],
                "MessageStatus": status,
                "SmsStatus": status,
            }
            if status in {"undelivered", "failed"} and self.callback_error_code:
                form["ErrorCode"] = self.callback_error_code
            answered = self._post_callback(message["StatusCallback"], form)
            with self._changed:
                self.callbacks.append((status, answered))
                self._changed.notify_all()

    def _post_callback(self, url: str, form: dict[str, str]) -> int:
        request = Request(  # noqa: S310 - the callback URL the test configured, on loopback
            url,
            data=urlencode(form).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(self.auth_token, url, form),
                "User-Agent": "TwilioProxy/1.1",
            },
            method="POST",
        )
        try:
            with urlopen(request, timeout=5) as answer:  # noqa: S310
                return int(answer.status)
        except HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    # --- the server side -----------------------------------------------------------------

    def _count_request(self) -> None:
        with self._changed:
            self.requests_count += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _answered(self) -> None:
        with self._changed:
            self.in_flight -= 1

    def _authorized(self, sid: str, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return sid == self.account_sid and hmac.compare_digest(
            (header or "").encode(), f"Basic {expected}".encode()
        )

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._changed:
            if self._failures:
                failure = self._failures.pop(0)
                return failure.status, twilio_error(
                    failure.status, failure.code, failure.message or None
                )
            missing = _missing_field(form)
            if missing is not None:
                return missing
            sid = "SM" + secrets.token_hex(16)
            self.messages.append({**form, "sid": sid, "received_at": time.monotonic()})
            self._changed.notify_all()
        now = format_datetime(datetime.now(UTC))
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        return 201, {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "to": form["To"],
            "from": form["From"],
            "body": form["Body"],
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "num_media": "0",
            "messaging_service_sid": None,
            "price": None,
            "price_unit": "USD",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "uri": f"{uri}.json",
            "subresource_uris": {"media": f"{uri}/Media.json"},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server names it
                fake._count_request()
                try:
                    self._post()
                finally:
                    fake._answered()

            def _post(self) -> None:
                length = int(self.headers.get("Content-Length") or "0")
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                if fake.delay:
                    fake._stopping.wait(fake.delay)
                match = _MESSAGES.match(self.path)
                if match is None:
                    self.answer(404, twilio_error(404))
                    return
                if not fake._authorized(match["sid"], self.headers.get("Authorization")):
                    self.answer(401, twilio_error(401))
                    return
                status, body = fake._create(form)
                self.answer(status, body)
                if status == 201 and form.get("StatusCallback"):
                    message = {**form, "sid": body["sid"]}
                    threading.Thread(
                        target=fake._report,
                        args=(message,),
                        name="fake-twilio-callbacks",
                        daemon=True,
                    ).start()

        return Handler


def _missing_field(form: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
    """Twilio's answers to a message without a recipient, sender or body."""
    if not form.get("To"):
        return 400, twilio_error(400, 21604, "A 'To' phone number is required.")
    if not form.get("From"):
        return 400, twilio_error(400, 21603, "A 'From' phone number is required.")
    if not form.get("Body"):
        return 400, twilio_error(400, 21602, "Message body is required.")
    return None


def twilio_signature(auth_token: str, url: str, form: dict[str, str]) -> str:
    """Twilio's webhook signature, written out independently of the client library.

    HMAC-SHA1 keyed with the auth token over the full URL followed by each POST field's name
    and value, in name order; base64.
    """
    payload = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
