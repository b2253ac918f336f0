"""In-memory twins of the WebAuthn ports: credentials beside the factor rows, ceremony state."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from mfa_pipeline.domain.errors import FactorExistsError
from mfa_pipeline.ports import WebAuthnCeremonyStore, WebAuthnCredentialRepository

if TYPE_CHECKING:
    from mfa_pipeline.domain.factors import Factor
    from mfa_pipeline.domain.webauthn import WebAuthnCredential
    from tests.doubles.memory_factors import InMemoryFactorRepository


class InMemoryWebAuthnCredentialRepository(WebAuthnCredentialRepository):
    """Credentials by factor id; each one's factor row lives in the in-memory factor twin."""

    def __init__(self, factors: InMemoryFactorRepository) -> None:
        self._factors = factors
        self._credentials: dict[str, WebAuthnCredential] = {}
        self._lock = threading.Lock()

    def add(self, factor: Factor, credential: WebAuthnCredential) -> None:
        with self._lock:
            if any(c.credential_id == credential.credential_id for c in self._credentials.values()):
                raise FactorExistsError("That passkey or security key is already registered.")
            self._factors.add_factor(factor)
            self._credentials[factor.factor_id] = credential

    def _live(self) -> list[WebAuthnCredential]:
        """Credentials whose factor row still exists (a removed factor takes its credential)."""
        return [
            c
            for c in self._credentials.values()
            if self._factors.get_factor(c.user_id, c.factor_id) is not None
        ]

    def for_user(self, user_id: str) -> list[WebAuthnCredential]:
        with self._lock:
            return [c for c in self._live() if c.user_id == user_id]

    def find(self, user_id: str, credential_id: str) -> WebAuthnCredential | None:
        with self._lock:
            return next(
                (
                    c
                    for c in self._live()
                    if c.user_id == user_id and c.credential_id == credential_id
                ),
                None,
            )

    def record_use(
        self, factor_id: str, *, previous: int, sign_count: int, backed_up: bool, now: float
    ) -> bool:
        with self._lock:
            credential = self._credentials.get(factor_id)
            if credential is None or credential.sign_count != previous:
                return False
            self._credentials[factor_id] = replace(
                credential, sign_count=sign_count, backed_up=backed_up, last_used_at=now
            )
            return True

    def rename(self, user_id: str, factor_id: str, name: str) -> bool:
        factor = self._factors.get_factor(user_id, factor_id)
        if factor is None:
            return False
        with self._factors._lock:
            self._factors._factors[factor_id] = replace(factor, label=name)
        with self._lock:
            credential = self._credentials.get(factor_id)
            if credential is not None:
                self._credentials[factor_id] = replace(credential, name=name)
        return True


class InMemoryWebAuthnCeremonyStore(WebAuthnCeremonyStore):
    """Ceremony state in a dict; nothing expires (tests move a frozen clock, not this)."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(
        self,
        key: str,
        value: str,
        *,
        ttl_seconds: float,  # noqa: ARG002 - nothing expires in memory
    ) -> None:
        with self._lock:
            self._values[key] = value

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._values.get(key)

    def take(self, key: str) -> str | None:
        with self._lock:
            return self._values.pop(key, None)
