"""A local stand-in for Firebase Cloud Messaging's HTTP v1 API and Google's OAuth token endpoint.

The real `pyfcm` client (with google-auth underneath) talks to it: the service-account JSON it
writes names this server's `/token` as `token_uri`, and the sender's endpoint base points at
`/v1/projects`. The token endpoint checks the RS256 JWT assertion google-auth signs with the
service account's key; the send endpoint checks the bearer token it handed out. Tests script
answers (`fail_next`, `unregister`) and read what was accepted (`messages`, `wait_for`).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.loopback import JsonHandler, LoopbackServer

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler
    from pathlib import Path

PROJECT = "mfa-pipeline-test"
_SEND = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    status: int
    error_status: str  # FCM's `error.status`, e.g. UNAVAILABLE, UNREGISTERED


@functools.cache
def _service_account_key() -> rsa.RSAPrivateKey:
    """One key per test process: a 2048-bit RSA key costs a tenth of a second or more to make,
    and a fake's state (tokens handed out, messages) is its own whichever key signs."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeFcm(LoopbackServer):
    def __init__(self) -> None:
        self._key = _service_account_key()
        self.messages: list[dict[str, Any]] = []  # accepted `message` objects + received_at
        self.token_requests = 0
        self._tokens: set[str] = set()
        self._unregistered: set[str] = set()
        self._failures: list[ScriptedFailure] = []
        self.delay = 0.0  # seconds each send waits before its answer (a provider's latency)
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        super().__init__(self._handler(), "fake-fcm")

    def stop(self) -> None:
        """Stop serving; a send waiting through `delay` is woken and answered at once."""
        self._stopping.set()
        super().stop()

    def write_service_account(self, path: Path) -> Path:
        """A service-account JSON whose key is this fake's and whose `token_uri` is local."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": "fake-key-1",
                    "private_key": pem,
                    "client_email": f"sender@{PROJECT}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"{self.url}/token",
                }
            )
        )
        return path

    def fail_next(self, count: int, *, status: int, error_status: str) -> None:
        with self._changed:
            self._failures += [ScriptedFailure(status, error_status)] * count

    def unregister(self, token: str) -> None:
        """FCM forgets this registration token (the app was uninstalled): 404 UNREGISTERED."""
        with self._changed:
            self._unregistered.add(token)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"{len(self.messages)} of {count} pushes arrived")
            return list(self.messages)

    # --- the server side -----------------------------------------------------------------

    def _issue_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        assertion = form.get("assertion", "")
        try:
            header, payload, signature = assertion.split(".")
            self._key.public_key().verify(
                _b64url_decode(signature),
                f"{header}.{payload}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            claims = json.loads(_b64url_decode(payload))
        except (ValueError, InvalidSignature):
            return 400, {"error": "invalid_grant", "error_description": "bad assertion"}
        if "firebase.messaging" not in str(claims.get("scope", "")):
            return 400, {"error": "invalid_scope"}
        token = "ya29.fake-" + secrets.token_hex(12)
        with self._changed:
            self.token_requests += 1
            self._tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def _send(self, authorization: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        bearer = (authorization or "").removeprefix("Bearer ")
        with self._changed:
            if bearer not in self._tokens:
                return 401, _error(401, "UNAUTHENTICATED")
            if self._failures:
                failure = self._failures.pop(0)
                return failure.status, _error(failure.status, failure.error_status)
            message = body.get("message") or {}
            if message.get("token") in self._unregistered:
                return 404, _error(404, "NOT_FOUND", "UNREGISTERED")
            data = message.get("data") or {}
            if not message.get("token") or not all(isinstance(v, str) for v in data.values()):
                return 400, _error(400, "INVALID_ARGUMENT")
            name = f"projects/{PROJECT}/messages/{secrets.token_hex(8)}"
            self.messages.append({**message, "name": name, "received_at": time.monotonic()})
            self._changed.notify_all()
        return 200, {"name": name}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server names it
                raw = self.rfile.read(int(self.headers.get("Content-Length") or "0"))
                if self.path == "/token":
                    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    self.answer(*fake._issue_token(form))
                    return
                if _SEND.match(self.path) is None:
                    self.answer(404, _error(404, "NOT_FOUND"))
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self.answer(400, _error(400, "INVALID_ARGUMENT"))
                    return
                if fake.delay:  # each request has its own thread: waits overlap, as at FCM
                    fake._stopping.wait(fake.delay)
                self.answer(*fake._send(self.headers.get("Authorization"), body))

        return Handler


def _error(status: int, error_status: str, fcm_code: str | None = None) -> dict[str, Any]:
    """FCM v1's error body; `fcm_code` goes into the FcmError detail (e.g. UNREGISTERED)."""
    details = (
        [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": fcm_code,
            }
        ]
        if fcm_code
        else []
    )
    return {
        "error": {
            "code": status,
            "message": error_status,
            "status": error_status,
            "details": details,
        }
    }
