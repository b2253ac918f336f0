"""Passkeys and security keys: registering credentials, and checking them at login.

Each credential is a factor of type `webauthn` (listed, renamed and removed with the others,
removed by an administrator's reset) with its key and counter beside it. The ceremonies are
checked behind the `WebAuthnCeremony` port. Registration options live in the shared
short-lived store for 5 minutes, single use; a login's state is kept with its challenge.
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.errors import (
    ChallengeExpiredError,
    FactorExistsError,
    NotFoundError,
)
from mfa_pipeline.domain.factors import Factor, FactorStatus, new_factor_id
from mfa_pipeline.domain.webauthn import (
    MAX_CREDENTIALS_PER_USER,
    REGISTRATION_TTL_SECONDS,
    CredentialRejection,
    InvalidCredentialError,
    WebAuthnCredential,
    WrongCredentialError,
    clean_name,
    counter_regressed,
    user_handle,
)
from mfa_pipeline.services import audit
from mfa_pipeline.services.verification import raise_for_blocked_miss

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mfa_pipeline.domain.challenges import Challenge, RequestContext
    from mfa_pipeline.ports import (
        ChallengeStore,
        Clock,
        FactorRepository,
        WebAuthnCeremony,
        WebAuthnCeremonyStore,
        WebAuthnCredentialRepository,
    )
    from mfa_pipeline.services.audit import Auditor
    from mfa_pipeline.services.policies import PolicyService

log = structlog.get_logger(__name__)

# Audit events of this factor (beside the shared enrolment and challenge events).
CLONE_SUSPECTED = "webauthn_clone_suspected"
FACTOR_RENAMED = "factor_renamed"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _registration_key(user_id: str, registration_id: str) -> str:
    # The user is part of the key: another user's registration id is simply not found.
    return f"reg:{user_id}:{registration_id}"


class FailureBudgetHook(abc.ABC):
    """Where the per-user failure budget (wrong codes across challenges) meets WebAuthn.

    WebAuthn never counts against the budget and is never locked by it; a successful
    WebAuthn login lifts the lock on the code factors (`FailureBudgetService` implements this).
    """

    @abc.abstractmethod
    def lift_after_webauthn_login(self, *, user_id: str, challenge_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RegistrationStart:
    registration_id: str
    public_key: dict[str, Any]


class WebAuthnEnrollment:
    """Registering passkeys and security keys, and renaming factors."""

    def __init__(
        self,
        *,
        factors: FactorRepository,
        credentials: WebAuthnCredentialRepository,
        ceremony_store: WebAuthnCeremonyStore,
        ceremony: WebAuthnCeremony,
        policies: PolicyService,
        auditor: Auditor,
        clock: Clock,
    ) -> None:
        self._factors = factors
        self._credentials = credentials
        self._store = ceremony_store
        self._ceremony = ceremony
        self._policies = policies
        self._auditor = auditor
        self._clock = clock

    def start(self, *, user_id: str, name: str | None) -> RegistrationStart:
        """Creation options for the browser; the user's credentials are excluded."""
        user = self._factors.get_user(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        self._policies.ensure_allowed(user, FactorType.WEBAUTHN)
        existing = self._credentials.for_user(user_id)
        if len(existing) >= MAX_CREDENTIALS_PER_USER:
            raise FactorExistsError(
                f"At most {MAX_CREDENTIALS_PER_USER} passkeys and security keys per user; "
                "remove one first."
            )
        options = self._ceremony.registration_options(
            user_handle=user_handle(user_id), user_name=user_id, exclude=existing
        )
        registration_id = f"r_{_b64(secrets.token_bytes(18))}"
        state = {"challenge": _b64(options.challenge), "name": clean_name(name)}
        self._store.put(
            _registration_key(user_id, registration_id),
            json.dumps(state),
            ttl_seconds=REGISTRATION_TTL_SECONDS,
        )
        log.info("webauthn_registration_started", user_id=user_id)
        return RegistrationStart(registration_id, options.public_key)

    def register(
        self,
        *,
        user_id: str,
        registration_id: str,
        credential: Mapping[str, object],
        name: str | None,
        context: RequestContext | None = None,
    ) -> WebAuthnCredential:
        """Verify the browser's answer to `start` and store the credential, active at once.

        The options are used up by this call whatever its outcome (single use), except when
        the credential is not even well-formed JSON, which leaves them for a corrected retry.
        """
        user = self._factors.get_user(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        self._ceremony.credential_id(credential, registration=True)  # `malformed` first
        raw = self._store.take(_registration_key(user_id, registration_id))
        if raw is None:
            raise NotFoundError(
                "No such registration: it expired (after 5 minutes) or was used; start again.",
                field="registration_id",
            )
        state = json.loads(raw)
        self._policies.ensure_allowed(user, FactorType.WEBAUTHN)
        try:
            verified = self._ceremony.verify_registration(
                credential, challenge=_unb64(state["challenge"])
            )
        except InvalidCredentialError as exc:
            log.info("webauthn_registration_refused", user_id=user_id, outcome=exc.reason.value)
            raise
        now = self._clock.now()
        factor = Factor(
            factor_id=new_factor_id(),
            user_id=user_id,
            type=FactorType.WEBAUTHN,
            status=FactorStatus.ACTIVE,
            created_at=now,
            activated_at=now,
            label=clean_name(name) if name else state["name"],
        )
        stored = verified.stored_as(
            factor_id=factor.factor_id, user_id=user_id, name=factor.label or "", created_at=now
        )
        self._credentials.add(factor, stored)
        self._auditor.record(
            audit.FACTOR_ENROLLED,
            user_id=user_id,
            context=context,
            outcome="ok",
            factor=FactorType.WEBAUTHN.value,
            factor_id=factor.factor_id,
            details={"aaguid": verified.aaguid, "backup_eligible": verified.backup_eligible},
        )
        log.info("webauthn_registered", user_id=user_id, factor_id=factor.factor_id)
        return stored

    def credentials(self, *, user_id: str) -> list[WebAuthnCredential]:
        return self._credentials.for_user(user_id)

    def rename(
        self, *, user_id: str, factor_id: str, name: str, context: RequestContext | None = None
    ) -> Factor:
        """Rename a factor the user named (a passkey, a push device)."""
        cleaned = clean_name(name)
        if not self._credentials.rename(user_id, factor_id, cleaned):
            raise NotFoundError("No such factor.")
        factor = self._factors.get_factor(user_id, factor_id)
        if factor is None:
            raise NotFoundError("No such factor.")
        self._auditor.record(
            FACTOR_RENAMED,
            user_id=user_id,
            context=context,
            outcome="ok",
            factor=factor.type.value,
            factor_id=factor_id,
        )
        return factor


class WebAuthnLogins:
    """The WebAuthn side of a login challenge: request options, then the assertion's check."""

    def __init__(
        self,
        *,
        credentials: WebAuthnCredentialRepository,
        ceremony: WebAuthnCeremony,
        store: ChallengeStore,
        auditor: Auditor,
        failure_budget: FailureBudgetHook,
    ) -> None:
        self._credentials = credentials
        self._ceremony = ceremony
        self._store = store
        self._auditor = auditor
        self._failure_budget = failure_budget

    def begin(
        self, *, user_id: str, allowed: list[Factor], settled: bool
    ) -> tuple[dict[str, Any], str]:
        """Request options naming the allowed credentials, and the state the check needs.

        The state is stored with the login challenge (one write, read back with it): its
        WebAuthn challenge, the allowed credentials and whether the failure budget was
        `settled` (`FailureBudgetService.settled`), so the check needs no SQL read. The
        counter's conditional update still reads the row as it is then (removed, or used by
        another login meanwhile). The credentials come with the factors when the repository
        read them together (one statement).
        """
        usable = [f.credential for f in allowed if f.credential is not None]
        if len(usable) < len(allowed):
            ids = {f.factor_id for f in allowed}
            usable = [c for c in self._credentials.for_user(user_id) if c.factor_id in ids]
        options = self._ceremony.authentication_options(usable)
        state = {
            "challenge": _b64(options.challenge),
            "credentials": [dataclasses.asdict(c) for c in usable],
            "settled": settled,
        }
        return options.public_key, json.dumps(state)

    def check(self, challenge: Challenge, credential: Mapping[str, object], *, now: float) -> str:
        """Check an assertion on a pending challenge; return the factor id of the key used.

        A malformed credential is refused without using an attempt, as a malformed code is;
        any other refusal uses one (and locks the challenge at the limit).
        """
        credential_id = self._ceremony.credential_id(credential, registration=False)
        if challenge.ceremony is None:
            raise ChallengeExpiredError("This challenge has expired; start a new one.")
        state = json.loads(challenge.ceremony)
        allowed = {
            c["credential_id"]: WebAuthnCredential(**{**c, "transports": tuple(c["transports"])})
            for c in state["credentials"]
        }
        stored = allowed.get(credential_id)
        if stored is None or stored.user_id != challenge.user_id:
            self._miss(challenge, CredentialRejection.UNKNOWN_CREDENTIAL, now)
        try:
            verified = self._ceremony.verify_assertion(
                credential, challenge=_unb64(state["challenge"]), stored=stored
            )
        except InvalidCredentialError as exc:
            if exc.reason is CredentialRejection.MALFORMED:
                raise
            self._miss(challenge, exc.reason, now, factor_id=stored.factor_id)
        self._count(
            challenge,
            stored,
            received=verified.new_sign_count,
            backed_up=verified.backed_up,
            now=now,
        )
        return stored.factor_id

    def _count(
        self,
        challenge: Challenge,
        stored: WebAuthnCredential,
        *,
        received: int,
        backed_up: bool,
        now: float,
    ) -> None:
        """Store the new counter, or refuse a counter that did not grow (a possible clone)."""
        for _ in range(2):
            if counter_regressed(stored.sign_count, received):
                break
            if self._credentials.record_use(
                stored.factor_id,
                previous=stored.sign_count,
                sign_count=received,
                backed_up=backed_up,
                now=now,
            ):
                return
            # The row changed since the options were made (another login, or a removal):
            # judge against the row as it is now.
            current = self._credentials.find(challenge.user_id, stored.credential_id)
            if current is None:
                self._miss(challenge, CredentialRejection.UNKNOWN_CREDENTIAL, now)
            stored = current
        self._clone_suspected(challenge, stored, received)
        self._miss(challenge, CredentialRejection.COUNTER_REGRESSED, now, stored.factor_id)

    def succeeded(self, challenge: Challenge) -> None:
        """After the challenge is verified: the failure count restarts and a lock lifts.

        Skipped when the budget was settled at the challenge's start: no count, no lock, and
        no way for one to fall before the challenge expires.
        """
        if json.loads(challenge.ceremony or "{}").get("settled", False):
            return
        self._failure_budget.lift_after_webauthn_login(
            user_id=challenge.user_id, challenge_id=challenge.challenge_id
        )

    def _clone_suspected(
        self, challenge: Challenge, stored: WebAuthnCredential, received: int
    ) -> None:
        log.warning(
            "webauthn_clone_suspected",
            user_id=challenge.user_id,
            factor_id=stored.factor_id,
            challenge_id=challenge.challenge_id,
            stored_sign_count=stored.sign_count,
            received_sign_count=received,
        )
        self._auditor.record(
            CLONE_SUSPECTED,
            user_id=challenge.user_id,
            context=challenge.context,
            outcome=CredentialRejection.COUNTER_REGRESSED.value,
            factor=FactorType.WEBAUTHN.value,
            factor_id=stored.factor_id,
            challenge_id=challenge.challenge_id,
            details={"stored_sign_count": stored.sign_count, "received_sign_count": received},
        )

    def _miss(
        self,
        challenge: Challenge,
        reason: CredentialRejection,
        now: float,
        factor_id: str | None = None,
    ) -> NoReturn:
        """Use one attempt of the challenge and refuse (or lock it at the limit)."""
        result = self._store.record_miss(challenge.challenge_id, now=now)
        raise_for_blocked_miss(result)
        log.info(
            "webauthn_assertion_refused",
            challenge_id=challenge.challenge_id,
            user_id=challenge.user_id,
            outcome=reason.value,
        )
        self._auditor.record(
            audit.CHALLENGE_FAILED,
            user_id=challenge.user_id,
            context=challenge.context,
            outcome=reason.value,
            factor=FactorType.WEBAUTHN.value,
            factor_id=factor_id or challenge.factor_id,
            challenge_id=challenge.challenge_id,
            details={"attempts_remaining": result.attempts_remaining},
            best_effort=True,
        )
        raise WrongCredentialError(reason, attempts_remaining=result.attempts_remaining)
