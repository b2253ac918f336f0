"""Idempotency keys: a retried creation answers what the first one did and sends nothing.

A request carrying a key reserves it (scoped to the calling application, so one application's
key never replays another's answer), runs, and keeps its answer for a day. A repeat with the
same request gets that answer again; with another request, `IdempotencyKeyReusedError`; while
the first still runs, `RequestInProgressError`. The challenge a request creates carries the key
in the same atomic step (`IdempotencyMark`): a request whose answer was lost after the
creation (a Redis restart cutting the reply, answered 503) is completed on its retry from
the challenge it did create, never by creating a second one. Answers are sealed with the
deployment's secret box: they may hold a phone number or a trusted-session token.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.errors import (
    IdempotencyKeyReusedError,
    InvalidRequestError,
    RequestInProgressError,
    UnavailableError,
)
from mfa_pipeline.ports import IdempotencyMark

if TYPE_CHECKING:
    from mfa_pipeline.ports import IdempotencyStore, SecretBox

log = structlog.get_logger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_PRINTABLE = range(0x20, 0x7F)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An HTTP answer as it was first given: status and JSON body."""

    status: int
    body: str


@dataclass(frozen=True, slots=True)
class Reservation:
    """This request holds the key; `created`: the challenge an earlier attempt created."""

    mark: IdempotencyMark
    fingerprint: str
    created: str | None


def check_key(key: str) -> None:
    """1 to 255 printable ASCII characters (the contract's `Idempotency-Key`)."""
    if not key or len(key) > MAX_KEY_LENGTH or any(ord(ch) not in _PRINTABLE for ch in key):
        raise InvalidRequestError(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.", field=HEADER
        )


class IdempotencyService:
    def __init__(
        self,
        *,
        store: IdempotencyStore,
        secrets: SecretBox,
        ttl_seconds: int,
        lease_seconds: int,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._ttl = ttl_seconds
        self._lease = lease_seconds

    def begin(
        self, *, application: str, key: str, request: str, user_id: str
    ) -> StoredAnswer | Reservation:
        """The stored answer to replay, or this request's reservation of the key.

        `request` describes the request (method, path, body) canonically: a repeat must match.
        """
        check_key(key)
        digest = hashlib.sha256(f"{application}\0{key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(request.encode()).hexdigest()
        held = self._store.begin(digest, fingerprint, lease_seconds=self._lease)
        if held is not None:
            if held.fingerprint != fingerprint:
                raise IdempotencyKeyReusedError(
                    f"This {HEADER} was used with another request; use a new key for a new one."
                )
            if held.response is None:
                raise RequestInProgressError(
                    f"The first request with this {HEADER} has not finished; retry shortly.",
                )
            log.info("idempotent_replay", application=application, user_id=user_id)
            return self._open(held.response, digest)
        created = self._store.created(digest, user_id=user_id)
        return Reservation(IdempotencyMark(digest, self._ttl), fingerprint, created)

    def finish(self, reservation: Reservation, answer: StoredAnswer) -> None:
        """Keep the answer for repeats. If the store is gone, the creation's marker still is."""
        sealed = self._secrets.encrypt(
            json.dumps({"status": answer.status, "body": answer.body}),
            context=_context(reservation.mark.digest),
        )
        try:
            self._store.finish(
                reservation.mark.digest, reservation.fingerprint, sealed, ttl_seconds=self._ttl
            )
        except UnavailableError:
            log.warning("idempotent_answer_unstored")

    def release(self, reservation: Reservation) -> None:
        """The request failed: a retry may run it again (or find what it created)."""
        with contextlib.suppress(UnavailableError):  # the lease then runs out by itself
            self._store.release(reservation.mark.digest, reservation.fingerprint)

    def _open(self, sealed: str, digest: str) -> StoredAnswer:
        stored = json.loads(self._secrets.decrypt(sealed, context=_context(digest)))
        return StoredAnswer(status=int(stored["status"]), body=str(stored["body"]))


def _context(digest: str) -> str:
    return f"idempotency:{digest}"
