"""A device simulator: what the mobile app does, for developers and tests without a phone.

It generates an Ed25519 key pair, registers itself for a user through the API (as the login
backend would on the app's behalf), reads its pushes from the outbox provider, and answers
them with a signature over the contract's canonical string. `mfa-pipeline device ...` drives
it from the command line; its state (keys, device id, token) is one JSON file, private (0600).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mfa_pipeline.adapters.outbox import OutboxReader
from mfa_pipeline.domain.push import canonical_answer

if TYPE_CHECKING:
    from pathlib import Path

    import httpx


@dataclass
class SimulatedDevice:
    """One simulated phone: its key, its push token and, once registered, its ids."""

    private_key: str  # base64 of the raw 32-byte Ed25519 seed
    push_token: str
    name: str = "Simulated phone"
    platform: str = "android"
    user_id: str | None = None
    device_id: str | None = None

    @classmethod
    def generate(cls, name: str = "Simulated phone") -> SimulatedDevice:
        key = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(
            private_key=base64.b64encode(key).decode(),
            push_token="sim-" + secrets.token_urlsafe(24),
            name=name,
        )

    @property
    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(self.private_key))

    @property
    def public_key(self) -> str:
        return base64.b64encode(self._key.public_key().public_bytes_raw()).decode()

    # --- persistence ---------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> SimulatedDevice:
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(self), handle)

    # --- what the app does ---------------------------------------------------------------

    def registration(self) -> dict[str, str]:
        """The body of `POST /v1/users/{id}/factors/push` for this device."""
        return {
            "device_name": self.name,
            "platform": self.platform,
            "push_token": self.push_token,
            "public_key": self.public_key,
        }

    def register(self, api: httpx.Client, user_id: str) -> str:
        answer = api.post(f"/v1/users/{user_id}/factors/push", json=self.registration())
        answer.raise_for_status()
        self.user_id = user_id
        self.device_id = str(answer.json()["device_id"])
        return self.device_id

    def answer(
        self,
        challenge_id: str,
        decision: str,
        *,
        number: str | None = None,
        reason: str | None = None,
        timestamp: int | None = None,
    ) -> dict[str, Any]:
        """The body of `POST /v1/push/responses`, signed with this device's key."""
        if self.device_id is None:
            raise RuntimeError("register the device first")
        ts = int(time.time()) if timestamp is None else timestamp
        signed = canonical_answer(challenge_id, self.device_id, decision, number, ts, reason=reason)
        body: dict[str, Any] = {
            "challenge_id": challenge_id,
            "device_id": self.device_id,
            "decision": decision,
            "timestamp": ts,
            "signature": base64.b64encode(self._key.sign(signed)).decode(),
        }
        if number is not None:
            body["number"] = number
        if reason is not None:
            body["reason"] = reason
        return body

    def pushes(self, outbox: Path) -> list[dict[str, Any]]:
        """The pushes the outbox provider recorded for this device, oldest first."""
        return [
            record.get("data") or {}
            for record in OutboxReader(outbox).messages(channel="push", to=self.push_token)
        ]
