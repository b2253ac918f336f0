"""Ports: the small abstract types the services depend on. Adapters implement them."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mfa_pipeline.domain.audit import AuditEvent
    from mfa_pipeline.domain.challenges import Challenge, ChallengeStatus
    from mfa_pipeline.domain.events import Event, UserEvent
    from mfa_pipeline.domain.factors import Factor, Role, User
    from mfa_pipeline.domain.failure_budget import FailureBudget, FailureCount
    from mfa_pipeline.domain.invitations import Candidate, Invitation
    from mfa_pipeline.domain.limits import RateLimit
    from mfa_pipeline.domain.phones import PhoneNumber
    from mfa_pipeline.domain.policies import FirmPolicy
    from mfa_pipeline.domain.sms_spend import SmsAdmission, SmsDestination
    from mfa_pipeline.domain.webauthn import (
        CeremonyOptions,
        VerifiedAssertion,
        VerifiedRegistration,
        WebAuthnCredential,
    )


class Clock(abc.ABC):
    """Time as Unix seconds; passed in so expiry, TOTP steps and windows test without sleeping."""

    @abc.abstractmethod
    def now(self) -> float: ...


# --- challenge store -------------------------------------------------------------------------


class Transition(StrEnum):
    """What an atomic store operation did."""

    DONE = "done"  # the change was made
    NOT_FOUND = "not_found"
    EXPIRED = "expired"  # past its expiry (it is now marked expired)
    COMPLETED = "completed"  # already in a final status other than expired/locked
    LOCKED = "locked"  # locked by too many wrong codes (possibly by this call)
    MISMATCH = "mismatch"  # wrong code, one attempt used
    DUPLICATE = "duplicate"  # delivery for this sequence already done
    INTERRUPTED = "interrupted"  # a send of this sequence began and never reported
    IN_FLIGHT = "in_flight"  # a send of this sequence began moments ago: another run has it
    STALE = "stale"  # superseded by a newer send sequence
    TOO_SOON = "too_soon"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True, slots=True)
class StoreResult:
    transition: Transition
    status: ChallengeStatus | None = None
    attempts_remaining: int = 0
    retry_after: float = 0.0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class ExpiredChallenge:
    challenge_id: str
    user_id: str
    factor: str
    application: str | None
    api_application: str | None = None  # the API key's application: what the audit records


@dataclass(frozen=True, slots=True)
class StaleDelivery:
    challenge_id: str
    user_id: str
    factor: str
    seq: int


@dataclass(frozen=True, slots=True)
class IdempotencyMark:
    """A request's idempotency key, to be stored with the challenge it creates, atomically.

    `digest` names the key within its application's scope; a retry of a request whose answer
    was lost after the creation finds the challenge by it (`IdempotencyStore.created`).
    """

    digest: str
    ttl_seconds: int


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What the store holds for a key: the request's fingerprint and, once done, its answer."""

    fingerprint: str
    response: str | None  # None while the first request runs; else its sealed answer


class IdempotencyStore(abc.ABC):
    """Idempotency keys and the first answer given to each (`Idempotency-Key`)."""

    @abc.abstractmethod
    def begin(
        self, digest: str, fingerprint: str, *, lease_seconds: int
    ) -> IdempotencyRecord | None:
        """Reserve `digest` for this request (None), or the record another request holds."""

    @abc.abstractmethod
    def finish(self, digest: str, fingerprint: str, response: str, *, ttl_seconds: int) -> None:
        """Keep `response` as the answer to every repeat of the reserved request."""

    @abc.abstractmethod
    def release(self, digest: str, fingerprint: str) -> None:
        """Drop the reservation of a request that failed: a retry runs it again."""

    @abc.abstractmethod
    def created(self, digest: str, *, user_id: str) -> str | None:
        """The id of the challenge created under `digest` for `user_id`, if any."""


@dataclass(frozen=True, slots=True)
class StepClaim:
    """A TOTP code's time step, to be accepted once for its factor (RFC 6238 §5.2)."""

    factor_id: str
    step: int
    keep_seconds: float


class ChallengeStore(abc.ABC):
    """Challenges in a shared store. Every state change is atomic across processes.

    A challenge stays readable for a retention period after it ends or expires, so that a
    reader is told `expired` rather than `not found`.
    """

    @abc.abstractmethod
    def create(
        self,
        challenge: Challenge,
        *,
        idempotency: IdempotencyMark | None = None,
        step_claim: StepClaim | None = None,
    ) -> bool:
        """Store a new challenge (pending, or already final for one-round-trip checks).

        With `idempotency`, the key is stored with it in the same atomic step: a request whose
        answer was lost after this call can still find what it created. With `step_claim`
        (a one-shot TOTP login), the code's time step is claimed in that step too, as
        `claim_totp_step` does: when the claim is refused nothing is stored and the answer is
        False (the code was used already). Otherwise True.
        """

    @abc.abstractmethod
    def get(self, challenge_id: str) -> Challenge | None: ...

    @abc.abstractmethod
    def verify_code(
        self, challenge_id: str, candidates: Sequence[str], *, now: float
    ) -> StoreResult:
        """Compare against the stored code hash; count a miss, lock at the limit, verify a hit."""

    @abc.abstractmethod
    def record_miss(self, challenge_id: str, *, now: float) -> StoreResult:
        """Count a wrong code checked outside the store (TOTP); lock at the limit."""

    @abc.abstractmethod
    def claim_totp_step(self, user_id: str, claim: StepClaim) -> bool:
        """Raise the factor's last accepted TOTP step; False when the step is not above it.

        Atomic across processes: of two racing with one code, one claims it. The mark is kept
        `claim.keep_seconds`, past the time any code of that step is accepted.
        """

    @abc.abstractmethod
    def complete(self, challenge_id: str, status: ChallengeStatus, *, now: float) -> StoreResult:
        """Move a pending, unexpired challenge to a final status."""

    @abc.abstractmethod
    def answer_push(
        self, challenge_id: str, *, approve: bool, number: str | None, fraud: bool, now: float
    ) -> StoreResult:
        """A device's answer, in one step, on a pending and unexpired push challenge.

        It becomes `approved` (the right number) or `denied` (a deny, or a wrong number);
        `fraud` marks it `fraud_reported`. Anything else changes nothing.
        """

    @abc.abstractmethod
    def claim_delivery(
        self,
        challenge_id: str,
        seq: int,
        code_hash: str,
        *,
        now: float,
        ttl_seconds: int,
        in_flight_seconds: float = 0,
    ) -> StoreResult:
        """Record that a send of `seq` begins, with its code hash; the code lives from now.

        A send found begun less than `in_flight_seconds` ago is `IN_FLIGHT` (a second copy of
        the task runs beside the first), older `INTERRUPTED` (its worker died mid-send).
        """

    @abc.abstractmethod
    def record_delivery(
        self,
        challenge_id: str,
        seq: int,
        *,
        status: str,
        now: float,
        provider_id: str | None = None,
        error_code: str | None = None,
        fail_challenge: bool = False,
    ) -> StoreResult:
        """Record the outcome of a send of `seq` (ignored when a newer send superseded it)."""

    @abc.abstractmethod
    def record_provider_status(
        self,
        challenge_id: str,
        seq: int,
        *,
        provider_id: str,
        status: str,
        now: float,
        error_code: str | None = None,
    ) -> StoreResult:
        """A provider's later report on message `provider_id` of send `seq` (`delivered`, ...).

        Applied only to the message last sent and only when further along than what is stored
        (`sent` < `delivered`/`undelivered`/`failed`): STALE for another send or message,
        DUPLICATE for a report out of order or repeated. The challenge's status never changes.
        """

    @abc.abstractmethod
    def request_resend(
        self, challenge_id: str, *, now: float, max_resends: int, min_interval: float
    ) -> StoreResult:
        """Start a new send sequence; the old code dies when the new one is claimed."""

    @abc.abstractmethod
    def sweep(self, *, now: float, batch_size: int) -> list[ExpiredChallenge]:
        """Expire due challenges in bounded batches; cost follows the number due, not stored."""

    @abc.abstractmethod
    def stale_deliveries(
        self, *, now: float, stale_seconds: float, retry_grace_seconds: float, batch_size: int
    ) -> list[StaleDelivery]:
        """SMS and push sends of pending challenges unchanged for `stale_seconds`.

        Queued and never claimed, or claimed and never finished (a worker died), or retrying
        for `retry_grace_seconds` beyond that (a retry's countdown lost with its worker). Each
        is returned at most once per `stale_seconds`, so its re-publication is not repeated at
        every pass.
        """

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise when the store cannot be reached."""


# --- enrollment store ------------------------------------------------------------------------


class FactorRepository(abc.ABC):
    """Users and their factors, durable (SQL). Secrets are stored as ciphertext only."""

    @abc.abstractmethod
    def put_user(
        self, user_id: str, *, firm_id: str | None, role: Role | None, now: float
    ) -> tuple[User | None, User]:
        """Create or update a user; a field given as None keeps its value (a new user: member).

        Returns the user before (None when created) and after, read in the same transaction.
        """

    def upsert_user(
        self, user_id: str, *, firm_id: str | None, now: float, role: Role | None = None
    ) -> User:
        """`put_user`, when only the result matters."""
        return self.put_user(user_id, firm_id=firm_id, role=role, now=now)[1]

    @abc.abstractmethod
    def lock_code_factors(self, user_id: str, *, now: float, until: float) -> bool:
        """Lock the user's TOTP and SMS factors until `until`; True when they were open."""

    @abc.abstractmethod
    def unlock_code_factors(self, user_id: str, *, now: float) -> bool:
        """Lift the lock; True when a lock in force was lifted (False: there was none)."""

    @abc.abstractmethod
    def get_user(self, user_id: str) -> User | None: ...

    @abc.abstractmethod
    def add_factor(self, factor: Factor) -> None: ...

    @abc.abstractmethod
    def get_factor(self, user_id: str, factor_id: str) -> Factor | None: ...

    @abc.abstractmethod
    def list_factors(self, user_id: str) -> list[Factor]: ...

    @abc.abstractmethod
    def get_user_with_factors(self, user_id: str) -> tuple[User | None, list[Factor]]:
        """The user and their factors in one read: what every login needs first."""

    @abc.abstractmethod
    def activate_factor(self, user_id: str, factor_id: str, *, now: float) -> bool:
        """Pending → active; False when it was not pending."""

    @abc.abstractmethod
    def set_pending_challenge(self, user_id: str, factor_id: str, challenge_id: str) -> None: ...

    @abc.abstractmethod
    def refresh_push_device(
        self,
        user_id: str,
        factor_id: str,
        *,
        push_token_ciphertext: str,
        label: str | None,
        platform: str,
    ) -> bool:
        """A re-registered device: new FCM token, name and platform; active again."""

    @abc.abstractmethod
    def deactivate_factor(self, user_id: str, factor_id: str) -> bool:
        """Active → inactive (a push device FCM no longer knows); False when not active."""

    @abc.abstractmethod
    def delete_factor(self, user_id: str, factor_id: str) -> bool: ...

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise when the database cannot be reached."""


# --- account features ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredBackupCode:
    code_id: int
    lookup: str
    code_hash: str


class BackupCodeRepository(abc.ABC):
    """Single-use backup codes, stored as salted argon2id hashes with a short keyed lookup tag."""

    @abc.abstractmethod
    def replace_codes(
        self, user_id: str, batch_id: str, codes: Sequence[tuple[str, str]], *, now: float
    ) -> None:
        """Drop the user's earlier set and store `(lookup, hash)` pairs, in one transaction."""

    @abc.abstractmethod
    def unused_candidates(self, user_id: str, lookup: str) -> list[StoredBackupCode]: ...

    @abc.abstractmethod
    def used_candidates(self, user_id: str, lookup: str) -> list[StoredBackupCode]:
        """Codes of the current set already used, to tell a reused code from a wrong one."""

    @abc.abstractmethod
    def burn(self, code_id: int, *, now: float) -> bool:
        """Mark used if still unused; of two racing uses exactly one gets True."""

    @abc.abstractmethod
    def remaining(self, user_id: str) -> int: ...

    @abc.abstractmethod
    def delete_all(self, user_id: str) -> int: ...


class TrustedSessionRepository(abc.ABC):
    """Tokens behind "keep me logged in", stored as SHA-256 digests bound to a user."""

    @abc.abstractmethod
    def add(
        self,
        token_hash: str,
        *,
        user_id: str,
        application: str | None,
        now: float,
        expires_at: float,
    ) -> None: ...

    @abc.abstractmethod
    def is_valid(self, token_hash: str, *, user_id: str, now: float) -> bool: ...

    @abc.abstractmethod
    def revoke_all(self, user_id: str, *, now: float) -> int: ...

    @abc.abstractmethod
    def count_live(self, user_id: str, *, now: float) -> int:
        """Tokens of the user neither revoked nor expired (for operators; no token is shown)."""


class PolicyRepository(abc.ABC):
    @abc.abstractmethod
    def get(self, firm_id: str) -> FirmPolicy | None: ...

    @abc.abstractmethod
    def put(self, policy: FirmPolicy) -> None: ...


class InvitationRepository(abc.ABC):
    """Open invitations to enable MFA, one per user at most."""

    @abc.abstractmethod
    def candidates(self, user_ids: Sequence[str]) -> dict[str, Candidate]:
        """The named users that exist: their firm and whether they have an active factor."""

    @abc.abstractmethod
    def open_among(self, user_ids: Sequence[str]) -> dict[str, Invitation]: ...

    @abc.abstractmethod
    def add_all(self, invitations: Sequence[Invitation]) -> None:
        """Store them all or none (one transaction); an ended invitation is replaced."""

    @abc.abstractmethod
    def open_for(self, user_id: str) -> Invitation | None:
        """The user's invitation, unless they have an active factor (enrolling ends it)."""

    @abc.abstractmethod
    def withdraw(self, firm_id: str, user_id: str) -> Invitation | None:
        """Remove the user's invitation of that firm; the removed one, or None."""


class AuditLog(abc.ABC):
    """Append-only event log; nothing is ever updated or deleted."""

    @abc.abstractmethod
    def record(self, event: AuditEvent) -> None: ...

    @abc.abstractmethod
    def record_many(self, events: Sequence[AuditEvent]) -> None:
        """Append several rows in one transaction (group commit of login outcomes)."""

    @abc.abstractmethod
    def for_user(
        self, user_id: str, *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEvent]:
        """Newest event first (by event time, then id); `before_id`: after that row."""


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """The sealed secrets of one factor row, as key rotation reads and rewrites them."""

    factor_id: str
    user_id: str
    secret_ciphertext: str | None = None
    phone_ciphertext: str | None = None
    push_token_ciphertext: str | None = None
    public_key_ciphertext: str | None = None


class SecretRotationRepository(abc.ABC):
    """Walks every stored ciphertext in factor-id order, to re-encrypt it under a new key."""

    @abc.abstractmethod
    def batch_after(self, factor_id: str | None, *, limit: int) -> list[StoredSecret]:
        """Up to `limit` rows holding a ciphertext, with factor ids above `factor_id`."""

    @abc.abstractmethod
    def replace(self, old: Sequence[StoredSecret], new: Sequence[StoredSecret]) -> int:
        """Write `new` over rows still holding `old`'s ciphertexts, in one transaction.

        A row changed or deleted since it was read is left alone; returns rows written.
        """

    @abc.abstractmethod
    def count(self) -> int:
        """Rows holding at least one ciphertext."""


# --- passkeys and security keys (WebAuthn) ---------------------------------------------------


class WebAuthnCredentialRepository(abc.ABC):
    """Registered credentials, durable (SQL); each one is also a factor row of type webauthn."""

    @abc.abstractmethod
    def add(self, factor: Factor, credential: WebAuthnCredential) -> None:
        """Store the factor row and its credential in one transaction.

        Raises `FactorExistsError` when the credential id is already registered (to anyone).
        """

    @abc.abstractmethod
    def for_user(self, user_id: str) -> list[WebAuthnCredential]: ...

    @abc.abstractmethod
    def find(self, user_id: str, credential_id: str) -> WebAuthnCredential | None:
        """The user's credential with this id; None for an unknown one or another user's."""

    @abc.abstractmethod
    def record_use(
        self, factor_id: str, *, previous: int, sign_count: int, backed_up: bool, now: float
    ) -> bool:
        """Store a login's counter if the stored one is still `previous`; False otherwise.

        Of two logins racing with the same counter, one gets True.
        """

    @abc.abstractmethod
    def rename(self, user_id: str, factor_id: str, name: str) -> bool:
        """Rename one of the user's factors (a passkey, a push device); False when not found."""


class WebAuthnCeremonyStore(abc.ABC):
    """Short-lived ceremony state shared by every API process (registration options)."""

    @abc.abstractmethod
    def put(self, key: str, value: str, *, ttl_seconds: float) -> None: ...

    @abc.abstractmethod
    def get(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def take(self, key: str) -> str | None:
        """Read and delete in one step: of two racing readers, only one gets the value."""


class WebAuthnCeremony(abc.ABC):
    """The WebAuthn ceremonies: options for the browser, and the checks of its answers.

    Every refusal raises `InvalidCredentialError` with a reason; nothing is parsed elsewhere.
    """

    @abc.abstractmethod
    def registration_options(
        self, *, user_handle: bytes, user_name: str, exclude: Sequence[WebAuthnCredential]
    ) -> CeremonyOptions: ...

    @abc.abstractmethod
    def verify_registration(
        self, credential: Mapping[str, object], *, challenge: bytes
    ) -> VerifiedRegistration:
        """Challenge, origin, RP ID hash, user presence and verification, algorithm."""

    @abc.abstractmethod
    def authentication_options(self, allow: Sequence[WebAuthnCredential]) -> CeremonyOptions: ...

    @abc.abstractmethod
    def credential_id(self, credential: Mapping[str, object], *, registration: bool) -> str:
        """The id a well-formed response names; `malformed` for anything else."""

    @abc.abstractmethod
    def verify_assertion(
        self, credential: Mapping[str, object], *, challenge: bytes, stored: WebAuthnCredential
    ) -> VerifiedAssertion:
        """Challenge, origin, RP ID hash, user verification and the signature.

        The counter is left to the caller, which compares it after the signature checked out.
        """


# --- outbound messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsReceipt:
    provider_id: str
    status: str = "sent"


class SmsError(Exception):
    """A send that failed. `code` is the provider's error code, safe to log and store."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class SmsTransientError(SmsError):
    """Worth retrying: 5xx, 429, timeouts, connection errors."""


class SmsPermanentError(SmsError):
    """Not worth retrying: an invalid or unreachable number, bad credentials."""


class SmsSender(abc.ABC):
    @abc.abstractmethod
    def send(self, *, to: str, body: str, status_callback: str | None = None) -> SmsReceipt: ...


class WebhookVerifier(abc.ABC):
    """Tells a provider's genuine callback from a forged one (a signature over URL and body)."""

    @abc.abstractmethod
    def verify(self, *, url: str, params: Mapping[str, str], signature: str) -> bool:
        """True when `signature` signs exactly this URL (query included) and these form fields."""


class EventPublisher(abc.ABC):
    """Hands events to the pipeline (Celery queues in production, a list in unit tests)."""

    @abc.abstractmethod
    def publish(self, event: Event | UserEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class PushReceipt:
    provider_id: str


class PushError(Exception):
    """A push that failed. `code` is the provider's error code, safe to log and store."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class PushTransientError(PushError):
    """Worth retrying: 5xx, 429, timeouts, connection errors."""


class PushUnregisteredError(PushError):
    """The device's token is unknown to the provider (uninstalled app): deactivate the device."""


class PushPermanentError(PushError):
    """Not worth retrying for this device: a malformed token, a rejected message."""


class PushSender(abc.ABC):
    @abc.abstractmethod
    def send(self, *, token: str, data: dict[str, str], ttl_seconds: int) -> PushReceipt:
        """Send a data message to one device; it is dropped if undelivered after the TTL."""


class WebhookError(Exception):
    """A webhook POST that failed; `retryable` for timeouts, 5xx, 408 and 429."""

    def __init__(self, message: str, *, code: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class WebhookSender(abc.ABC):
    @abc.abstractmethod
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST once; raise `WebhookError` unless the receiver answered 2xx."""


class PushGuard(abc.ABC):
    """Push fatigue limits per user, shared by every API process."""

    @abc.abstractmethod
    def admit(self, user_id: str, challenge_id: str, *, now: float, expires_at: float) -> float:
        """Count a new push challenge; 0 when allowed, else seconds until one would be.

        Refused while "not me" blocks the user, at `MAX_PENDING_PER_USER` pending pushes, or at
        `MAX_PER_HOUR` pushes in the last hour; a refused push is not counted.
        """

    @abc.abstractmethod
    def release(self, user_id: str, challenge_id: str) -> None:
        """The push was answered or failed: it no longer counts as pending."""

    @abc.abstractmethod
    def block(self, user_id: str, *, seconds: float, now: float) -> None:
        """Refuse new pushes for the user for `seconds` (after a "not me")."""


class FailureCounter(abc.ABC):
    """Consecutive wrong codes per user (`domain/failure_budget.py`), shared by every process."""

    @abc.abstractmethod
    def record_failure(self, user_id: str, budget: FailureBudget, *, now: float) -> FailureCount:
        """Count one wrong code atomically; the count and when the next try is allowed."""

    @abc.abstractmethod
    def state(self, user_id: str) -> FailureCount:
        """The count now and when the user may next try a code (0 failures, retry_at 0: none)."""

    @abc.abstractmethod
    def reset(self, user_id: str) -> None:
        """A success (or an administrator's reset): the count starts again from zero."""


class RateLimiter(abc.ABC):
    @abc.abstractmethod
    def hit(self, key: str, limit: RateLimit, *, now: float) -> float:
        """Count one event under `key`; return 0 when allowed, else seconds until allowed."""

    def hit_many(self, hits: Sequence[tuple[str, RateLimit]], *, now: float) -> list[float]:
        """Count several events at once (adapters may do it in one round trip)."""
        return [self.hit(key, limit, now=now) for key, limit in hits]


class LoginCounters(abc.ABC):
    """A login's rate windows counted and its user's failure count read, in one step.

    A code or passkey login needs both before its check; where one store holds both, that is
    one round trip instead of two on every login.
    """

    @abc.abstractmethod
    def hit_and_read(
        self, hits: Sequence[tuple[str, RateLimit]], *, user_id: str, now: float
    ) -> tuple[list[float], FailureCount]:
        """`RateLimiter.hit_many(hits)` and `FailureCounter.state(user_id)`."""


class SeparateLoginCounters(LoginCounters):
    """The two calls one after the other: for stores that cannot do both at once."""

    def __init__(self, limiter: RateLimiter, failures: FailureCounter) -> None:
        self._limiter = limiter
        self._failures = failures

    def hit_and_read(
        self, hits: Sequence[tuple[str, RateLimit]], *, user_id: str, now: float
    ) -> tuple[list[float], FailureCount]:
        return self._limiter.hit_many(hits, now=now), self._failures.state(user_id)


class SmsSpendGuard(abc.ABC):
    """SMS pumping and bombing limits shared by every process (`domain/sms_spend.py`)."""

    @abc.abstractmethod
    def admit(
        self,
        destination: SmsDestination,
        *,
        ticket: str,
        now: float,
        application: str | None = None,
    ) -> SmsAdmission:
        """Count one SMS to `destination` if every window and breaker allow it, else none.

        Refused while the breaker of this application to this country, or the global one, is
        open; a send past a breaker's SMS per minute opens it (the scoped one first) for the
        cooldown. A refused send is not counted anywhere.
        """

    @abc.abstractmethod
    def refund(
        self, destination: SmsDestination, *, ticket: str, application: str | None = None
    ) -> None:
        """Uncount an admitted send that did not happen after all (e.g. a refused resend)."""


class SecretDecryptError(Exception):
    """A ciphertext that cannot be opened: unknown key, tampering, or moved to another row."""


class SecretBox(abc.ABC):
    """Authenticated encryption of secrets at rest, bound to where they belong (`context`)."""

    @abc.abstractmethod
    def encrypt(self, plaintext: str, *, context: str) -> str: ...

    @abc.abstractmethod
    def decrypt(self, ciphertext: str, *, context: str) -> str:
        """The plaintext; `SecretDecryptError` when the key is unknown or the data was moved."""

    @abc.abstractmethod
    def reencrypt(self, ciphertext: str, *, context: str) -> str | None:
        """The ciphertext under the first key, or None when it already is (key rotation)."""

    @abc.abstractmethod
    def code_keys(self) -> list[bytes]:
        """Keys for hashing one-time codes; the first hashes, all are tried when checking."""


class CodeHasher(abc.ABC):
    """A slow, salted hash of backup codes: a stolen table must not give the codes back."""

    @abc.abstractmethod
    def hash(self, code: str) -> str: ...

    @abc.abstractmethod
    def verify(self, code_hash: str, code: str) -> bool: ...

    @abc.abstractmethod
    def waste_time(self, code: str) -> None:
        """Cost what a `verify` costs, so a user without codes answers as slowly as one with."""


# --- enrollment helpers ----------------------------------------------------------------------


class PhoneNumbers(abc.ABC):
    """Reading what a user typed as a phone number, and placing a number for the SMS limits."""

    @abc.abstractmethod
    def parse(self, text: object, region: str | None = None) -> PhoneNumber:
        """A mobile number in every form it is shown; `InvalidPhoneError` with a hint if not."""

    @abc.abstractmethod
    def destination(self, e164: str) -> SmsDestination:
        """The number, its block and its country, for the SMS pumping limits."""


class QrRenderer(abc.ABC):
    @abc.abstractmethod
    def svg(self, data: str) -> str:
        """`data` as a QR code, an inline SVG document."""


# --- operations ------------------------------------------------------------------------------


class Metrics(abc.ABC):
    """Counters, histograms and gauges for operators, summed over every API and worker process.

    Services call it where the matching structured log event is written; label values are the
    log fields of the same names. `application` may be anything a client sent: adapters keep
    the label set bounded.
    """

    @abc.abstractmethod
    def challenge_created(self, *, factor: str, application: str | None) -> None: ...

    @abc.abstractmethod
    def challenge_verified(self, *, factor: str, application: str | None) -> None: ...

    @abc.abstractmethod
    def challenge_failed(self, *, factor: str, application: str | None, reason: str) -> None:
        """Ended without success: `locked` (wrong codes), `failed` (undeliverable), `denied`."""

    @abc.abstractmethod
    def challenge_expired(self, *, factor: str, application: str | None) -> None: ...

    @abc.abstractmethod
    def delivery_latency(self, *, channel: str, seconds: float) -> None:
        """From the request of a send (creation or resend) to the provider accepting it."""

    @abc.abstractmethod
    def provider_error(self, *, channel: str, provider_error_code: str) -> None: ...

    @abc.abstractmethod
    def delivery_reported(self, *, channel: str, status: str) -> None:
        """A provider's later delivery report was applied (`delivered`, `undelivered`, ...)."""

    @abc.abstractmethod
    def rate_limited(self, *, limit: str) -> None: ...

    @abc.abstractmethod
    def factor_lock(self, *, action: str) -> None:
        """The failure budget `locked` a user's code factors, or a lock was `lifted`."""

    @abc.abstractmethod
    def long_poll_waiters(self, delta: int) -> None:
        """A long-poll request began (+1) or ended (-1) in this process."""

    @abc.abstractmethod
    def exposition(self) -> tuple[bytes, str]:
        """Every process's metrics as a scrape answer: (body, content type)."""


class NullMetrics(Metrics):
    """Records nothing: the default where no metrics are wired (unit tests, admin commands)."""

    def challenge_created(self, *, factor: str, application: str | None) -> None:
        pass

    def challenge_verified(self, *, factor: str, application: str | None) -> None:
        pass

    def challenge_failed(self, *, factor: str, application: str | None, reason: str) -> None:
        pass

    def challenge_expired(self, *, factor: str, application: str | None) -> None:
        pass

    def delivery_latency(self, *, channel: str, seconds: float) -> None:
        pass

    def provider_error(self, *, channel: str, provider_error_code: str) -> None:
        pass

    def delivery_reported(self, *, channel: str, status: str) -> None:
        pass

    def rate_limited(self, *, limit: str) -> None:
        pass

    def factor_lock(self, *, action: str) -> None:
        pass

    def long_poll_waiters(self, delta: int) -> None:
        pass

    def exposition(self) -> tuple[bytes, str]:
        return b"", "text/plain; version=0.0.4; charset=utf-8"
