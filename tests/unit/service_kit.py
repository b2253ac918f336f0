"""The service graph of production (`build_services`), on in-memory twins and a frozen clock.

No Redis, no SQL, no network: each test builds its own kit with `make_kit()` and drives
time by hand through `kit.clock`.
"""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

import pyotp

from mfa_pipeline.adapters.argon2_hasher import Argon2CodeHasher
from mfa_pipeline.adapters.crypto import AesGcmSecretBox, generate_key, parse_keys
from mfa_pipeline.adapters.phonenumbers_parser import PhonenumbersPhoneNumbers
from mfa_pipeline.adapters.py_webauthn import PyWebAuthnCeremony
from mfa_pipeline.adapters.segno_qr import SegnoQrRenderer
from mfa_pipeline.adapters.webhook_verifiers import NullWebhookVerifier
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.factors import Factor, FactorStatus, new_factor_id
from mfa_pipeline.domain.rules import ChallengeRules
from mfa_pipeline.domain.totp import PERIOD_SECONDS, SKEW_DIAGNOSIS_WINDOW, generate_secret
from mfa_pipeline.ports import NullMetrics, SeparateLoginCounters, SmsError, SmsReceipt, SmsSender
from mfa_pipeline.services.graph import Ports, Rules, Services, build_services
from mfa_pipeline.services.verification import phone_context, totp_context
from tests.doubles.clock import FrozenClock
from tests.doubles.failure_counter import InMemoryFailureCounter
from tests.doubles.idempotency import InMemoryIdempotencyStore
from tests.doubles.invitations import InMemoryInvitationRepository
from tests.doubles.memory_account import (
    InMemoryAuditLog,
    InMemoryBackupCodeRepository,
    InMemoryPolicyRepository,
    InMemoryTrustedSessionRepository,
)
from tests.doubles.memory_factors import InMemoryFactorRepository, InMemorySecretRotationRepository
from tests.doubles.memory_store import InMemoryChallengeStore, InMemoryRateLimiter
from tests.doubles.publisher import RecordingEventPublisher
from tests.doubles.push_guard import InMemoryPushGuard
from tests.doubles.senders import RecordingPushSender, RecordingWebhookSender
from tests.doubles.sms_spend import InMemorySmsSpendGuard
from tests.doubles.webauthn import (
    InMemoryWebAuthnCeremonyStore,
    InMemoryWebAuthnCredentialRepository,
)

if TYPE_CHECKING:
    from mfa_pipeline.domain.events import Event
    from mfa_pipeline.services.challenges import ChallengeService
    from mfa_pipeline.services.delivery import SmsDeliveryService
    from mfa_pipeline.services.enrollment import EnrollmentService
    from mfa_pipeline.services.sweeps import SweepService

E = TypeVar("E", bound="Event")

# A frozen start in the middle of a 30 s TOTP step, so that ±n steps are exactly ±n * 30 s.
START = 60_000_000 * PERIOD_SECONDS + 15.0
# The smallest argon2id the library allows: the services' logic, not the hash's cost, is tested.
CHEAP_HASHER = Argon2CodeHasher(time_cost=1, memory_cost_kib=8, parallelism=1)
PHONE = "+12015550123"

_SIX_DIGITS = re.compile(r"\b\d{6}\b")


@dataclass(frozen=True, slots=True)
class Sms:
    to: str
    body: str
    status_callback: str | None

    @property
    def code(self) -> str:
        """The one 6-digit run of the body (fails loudly when there is not exactly one)."""
        (code,) = _SIX_DIGITS.findall(self.body)
        return str(code)


class RecordingSmsSender(SmsSender):
    """The SMS port's test double: records what is sent, raises what it is told to.

    `attempts` holds every message handed to it, `sent` only those it accepted; an error
    queued with `fail_next` is raised by the next send, after the attempt is recorded.
    """

    def __init__(self) -> None:
        self.attempts: list[Sms] = []
        self.sent: list[Sms] = []
        self.provider_ids: list[str] = []
        self._failures: list[SmsError] = []
        self._ids = itertools.count(1)

    def fail_next(self, error: SmsError) -> None:
        self._failures.append(error)

    def send(self, *, to: str, body: str, status_callback: str | None = None) -> SmsReceipt:
        message = Sms(to=to, body=body, status_callback=status_callback)
        self.attempts.append(message)
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append(message)
        provider_id = f"SM{next(self._ids):032x}"
        self.provider_ids.append(provider_id)
        return SmsReceipt(provider_id=provider_id)

    @property
    def last(self) -> Sms:
        return self.sent[-1]


@dataclass(frozen=True, slots=True)
class TotpFactor:
    factor: Factor
    secret: str

    @property
    def factor_id(self) -> str:
        return self.factor.factor_id

    def code(self, *, at: float, steps: int = 0) -> str:
        """The authenticator's code at `at`, shifted by `steps` 30 s steps."""
        return pyotp.TOTP(self.secret).at(at, counter_offset=steps)

    def wrong_code(self, *, at: float) -> str:
        """A code matching no step within the skew-diagnosis window: a plain miss."""
        near = {
            self.code(at=at, steps=offset)
            for offset in range(-SKEW_DIAGNOSIS_WINDOW, SKEW_DIAGNOSIS_WINDOW + 1)
        }
        return next(c for c in (f"{n:06d}" for n in range(10**6)) if c not in near)


@dataclass
class ServiceKit:
    """`services` as production builds them; the twins behind `ports`, typed for arranging."""

    services: Services
    ports: Ports
    rules: ChallengeRules

    def __post_init__(self) -> None:
        p = self.ports
        assert isinstance(p.clock, FrozenClock)
        assert isinstance(p.store, InMemoryChallengeStore)
        assert isinstance(p.factors, InMemoryFactorRepository)
        assert isinstance(p.limiter, InMemoryRateLimiter)
        assert isinstance(p.publisher, RecordingEventPublisher)
        assert isinstance(p.secrets, AesGcmSecretBox)
        assert isinstance(p.sms_sender, RecordingSmsSender)
        assert isinstance(p.push_sender, RecordingPushSender)
        assert isinstance(p.push_guard, InMemoryPushGuard)
        assert isinstance(p.backup_codes, InMemoryBackupCodeRepository)
        assert isinstance(p.trusted_sessions, InMemoryTrustedSessionRepository)
        assert isinstance(p.audit_log, InMemoryAuditLog)
        self.clock, self.store, self.factors, self.limiter = p.clock, p.store, p.factors, p.limiter
        self.publisher, self.secrets, self.sms, self.push = (
            p.publisher,
            p.secrets,
            p.sms_sender,
            p.push_sender,
        )
        self.push_guard, self.backup_codes = p.push_guard, p.backup_codes
        self.trusted_sessions, self.audit = p.trusted_sessions, p.audit_log

    @property
    def challenges(self) -> ChallengeService:
        return self.services.challenges

    @property
    def enrollment(self) -> EnrollmentService:
        return self.services.enrollment

    @property
    def delivery(self) -> SmsDeliveryService:
        return self.services.sms_delivery

    @property
    def sweeps(self) -> SweepService:
        return self.services.sweeps

    # --- arranging ---------------------------------------------------------------------------

    def add_user(self) -> str:
        user_id = f"user-{uuid.uuid4().hex[:12]}"
        self.factors.upsert_user(user_id, firm_id=None, now=self.clock.now())
        return user_id

    def add_totp(self, user_id: str, *, active: bool = True) -> TotpFactor:
        """A TOTP factor put straight into the repository (no challenge, no rate window)."""
        secret = generate_secret()
        factor = self._new_factor(user_id, FactorType.TOTP, active=active)
        factor = replace(
            factor, secret_ciphertext=self.secrets.encrypt(secret, context=totp_context(factor))
        )
        self.factors.add_factor(factor)
        return TotpFactor(factor, secret)

    def add_sms(self, user_id: str, *, phone: str = PHONE, active: bool = True) -> Factor:
        """An SMS factor put straight into the repository (no challenge, no rate window)."""
        factor = replace(
            self._new_factor(user_id, FactorType.SMS, active=active),
            phone_last2=phone[-2:],
            phone_region="US",
        )
        factor = replace(
            factor, phone_ciphertext=self.secrets.encrypt(phone, context=phone_context(factor))
        )
        self.factors.add_factor(factor)
        return factor

    def _new_factor(self, user_id: str, kind: FactorType, *, active: bool) -> Factor:
        now = self.clock.now()
        return Factor(
            factor_id=new_factor_id(),
            user_id=user_id,
            type=kind,
            status=FactorStatus.ACTIVE if active else FactorStatus.PENDING,
            created_at=now,
            activated_at=now if active else None,
        )

    # --- observing ---------------------------------------------------------------------------

    def events(self, kind: type[E]) -> list[E]:
        return [e for e in self.publisher.events if isinstance(e, kind)]


def make_kit(
    *,
    rules: ChallengeRules | None = None,
    start: float = START,
    sms_allow_non_geographic: bool = False,
) -> ServiceKit:
    """`build_services` on in-memory twins of every port, as production calls it on adapters."""
    rules = rules or ChallengeRules()
    spend_limits = Rules().sms_spend
    factors = InMemoryFactorRepository()
    store = InMemoryChallengeStore()
    limiter, failures = InMemoryRateLimiter(), InMemoryFailureCounter()
    ports = Ports(
        clock=FrozenClock(start),
        store=store,
        limiter=limiter,
        idempotency=InMemoryIdempotencyStore(store),
        factors=factors,
        failures=failures,
        login_counters=SeparateLoginCounters(limiter, failures),
        secrets=AesGcmSecretBox(parse_keys([generate_key()])),
        stored_secrets=InMemorySecretRotationRepository(factors),
        backup_codes=InMemoryBackupCodeRepository(),
        code_hasher=CHEAP_HASHER,
        trusted_sessions=InMemoryTrustedSessionRepository(),
        policies=InMemoryPolicyRepository(),
        audit_log=InMemoryAuditLog(),
        publisher=RecordingEventPublisher(),
        sms_sender=RecordingSmsSender(),
        sms_spend_guard=InMemorySmsSpendGuard(limits=spend_limits),
        push_sender=RecordingPushSender(),
        push_guard=InMemoryPushGuard(),
        webhook_sender=RecordingWebhookSender(),
        webhook_verifier=NullWebhookVerifier(),
        webauthn_credentials=InMemoryWebAuthnCredentialRepository(factors),
        invitations=InMemoryInvitationRepository(factors),
        webauthn_ceremonies=InMemoryWebAuthnCeremonyStore(),
        webauthn_ceremony=PyWebAuthnCeremony(
            rp_id="localhost", rp_name="Test", origins=["http://localhost"]
        ),
        phones=PhonenumbersPhoneNumbers(),
        qr=SegnoQrRenderer(),
        metrics=NullMetrics(),
    )
    return ServiceKit(
        services=build_services(
            ports,
            Rules(
                challenges=rules,
                sms_spend=spend_limits,
                sms_allow_non_geographic=sms_allow_non_geographic,
            ),
        ),
        ports=ports,
        rules=rules,
    )
