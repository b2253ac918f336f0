"""Challenge lifecycle: factors, statuses, lifetimes and the record the store keeps."""

from __future__ import annotations

import secrets
import zlib
from dataclasses import dataclass, field
from enum import StrEnum


class FactorType(StrEnum):
    WEBAUTHN = "webauthn"  # passkeys and security keys: one factor row per credential
    TOTP = "totp"
    SMS = "sms"
    PUSH = "push"
    BACKUP_CODE = "backup_code"


class RequestedFactor(StrEnum):
    """What a client may ask for: a factor type, or `auto` (WebAuthn, push, TOTP, then SMS)."""

    AUTO = "auto"
    WEBAUTHN = "webauthn"
    TOTP = "totp"
    SMS = "sms"
    PUSH = "push"
    BACKUP_CODE = "backup_code"


class ChallengeStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    LOCKED = "locked"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self is not ChallengeStatus.PENDING


class DeliveryStatus(StrEnum):
    NOT_APPLICABLE = "none"
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


class ChallengePurpose(StrEnum):
    LOGIN = "login"
    ENROLLMENT = "enrollment"


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """Seconds each challenge lives: SMS 10 min from sending, push 2 min, others 5 (contract)."""

    sms: int = 600
    push: int = 120
    other: int = 300

    def for_factor(self, factor: FactorType) -> int:
        if factor is FactorType.SMS:
            return self.sms
        if factor is FactorType.PUSH:
            return self.push
        return self.other


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is logging in, as the login backend saw it. Never holds a secret."""

    ip: str | None = None
    user_agent: str | None = None
    application: str | None = None  # as the login backend names it (shown on the phone)
    # The application whose API key made the call. The audit records this one: the body's
    # `application` is the caller's word, and one application's key must not act as another.
    api_application: str | None = None

    @property
    def audited_application(self) -> str | None:
        return self.api_application or self.application


@dataclass(frozen=True, slots=True)
class Delivery:
    status: DeliveryStatus = DeliveryStatus.NOT_APPLICABLE
    attempts: int = 0
    provider_id: str | None = None
    error_code: str | None = None
    sent_at: float | None = None
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class Challenge:
    """A challenge as stored. `code_hash` is never the code itself and never leaves the service."""

    challenge_id: str
    user_id: str
    factor: FactorType
    factor_id: str | None
    status: ChallengeStatus
    purpose: ChallengePurpose
    created_at: float
    expires_at: float
    attempts: int
    max_attempts: int
    context: RequestContext = field(default_factory=RequestContext)
    delivery: Delivery = field(default_factory=Delivery)
    resends: int = 0
    send_seq: int = 0
    last_resend_at: float | None = None
    completed_at: float | None = None
    number_match: str | None = None
    fraud_reported: bool = False  # the user answered a push "not me"
    # WebAuthn: the ceremony's state (its challenge, the allowed credentials), opaque here.
    ceremony: str | None = None

    @property
    def attempts_remaining(self) -> int:
        return max(0, self.max_attempts - self.attempts)

    def status_at(self, now: float) -> ChallengeStatus:
        """The status a reader sees: pending past expiry reads `expired` even before a sweep."""
        if self.status is ChallengeStatus.PENDING and now >= self.expires_at:
            return ChallengeStatus.EXPIRED
        return self.status


# Challenge ids carry their store shard as the first hex digit so that the store can place a
# challenge next to its user's keys (one Redis Cluster slot) without a lookup. The rest is
# 168 random bits: ids are unguessable.
_ID_RANDOM_BYTES = 21


def shard_of(user_id: str, shards: int) -> int:
    return zlib.crc32(user_id.encode()) % shards


def new_challenge_id(shard: int) -> str:
    return f"{shard:03x}{secrets.token_urlsafe(_ID_RANDOM_BYTES)}"


def shard_of_challenge(challenge_id: str) -> int:
    return int(challenge_id[:3], 16)


def is_well_formed_challenge_id(challenge_id: str) -> bool:
    if len(challenge_id) != 3 + 28:
        return False
    head, tail = challenge_id[:3], challenge_id[3:]
    return all(c in "0123456789abcdef" for c in head) and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in tail
    )
