"""The service graph: every service with every collaborator, built from ports and rules.

Production builds the ports from settings (`bootstrap.build_ports`); the unit tests pass
in-memory twins. Both call `build_services`, so the tests run the graph production runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mfa_pipeline.domain.failure_budget import FailureBudget
from mfa_pipeline.domain.limits import RateLimit
from mfa_pipeline.domain.rules import ChallengeRules
from mfa_pipeline.domain.sms_spend import SmsSpendLimits
from mfa_pipeline.services.admin import AdminService
from mfa_pipeline.services.administrators import FirmAdministrators
from mfa_pipeline.services.audit import Auditor
from mfa_pipeline.services.backup_codes import BackupCodeService
from mfa_pipeline.services.challenges import ChallengeService
from mfa_pipeline.services.delivery import SmsDeliveryService
from mfa_pipeline.services.delivery_status import DeliveryStatusService
from mfa_pipeline.services.enrollment import EnrollmentService
from mfa_pipeline.services.failure_budget import CodeFactorLock, FailureBudgetService
from mfa_pipeline.services.idempotency import IdempotencyService
from mfa_pipeline.services.invitations import InvitationService
from mfa_pipeline.services.login import LoginService
from mfa_pipeline.services.policies import PolicyService
from mfa_pipeline.services.push import PushAnswers, PushDeliveryService, PushDevices
from mfa_pipeline.services.readiness import Readiness
from mfa_pipeline.services.sms_spend import SmsSendGate
from mfa_pipeline.services.sweeps import SweepService
from mfa_pipeline.services.trusted_sessions import TrustedSessionService
from mfa_pipeline.services.webauthn import WebAuthnEnrollment, WebAuthnLogins
from mfa_pipeline.services.webhooks import ResultWebhooks

if TYPE_CHECKING:
    from mfa_pipeline.ports import (
        AuditLog,
        BackupCodeRepository,
        ChallengeStore,
        Clock,
        CodeHasher,
        EventPublisher,
        FactorRepository,
        FailureCounter,
        IdempotencyStore,
        InvitationRepository,
        LoginCounters,
        Metrics,
        PhoneNumbers,
        PolicyRepository,
        PushGuard,
        PushSender,
        QrRenderer,
        RateLimiter,
        SecretBox,
        SecretRotationRepository,
        SmsSender,
        SmsSpendGuard,
        TrustedSessionRepository,
        WebAuthnCeremony,
        WebAuthnCeremonyStore,
        WebAuthnCredentialRepository,
        WebhookSender,
        WebhookVerifier,
    )


@dataclass(frozen=True, slots=True)
class Ports:
    """One adapter per port: Redis, SQL and the providers in production, twins in tests."""

    clock: Clock
    store: ChallengeStore
    limiter: RateLimiter
    idempotency: IdempotencyStore
    factors: FactorRepository
    failures: FailureCounter
    # The two above, asked together on every login (one round trip where one store has both).
    login_counters: LoginCounters
    secrets: SecretBox
    stored_secrets: SecretRotationRepository
    backup_codes: BackupCodeRepository
    code_hasher: CodeHasher
    trusted_sessions: TrustedSessionRepository
    policies: PolicyRepository
    audit_log: AuditLog
    publisher: EventPublisher
    sms_sender: SmsSender
    sms_spend_guard: SmsSpendGuard
    push_sender: PushSender
    push_guard: PushGuard
    webhook_sender: WebhookSender
    webhook_verifier: WebhookVerifier
    webauthn_credentials: WebAuthnCredentialRepository
    invitations: InvitationRepository
    webauthn_ceremonies: WebAuthnCeremonyStore
    webauthn_ceremony: WebAuthnCeremony
    phones: PhoneNumbers
    qr: QrRenderer
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class ResultWebhookTarget:
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Rules:
    """The deployment's numbers and choices; the defaults are the settings' defaults."""

    challenges: ChallengeRules = field(default_factory=ChallengeRules)
    sms_spend: SmsSpendLimits = field(default_factory=SmsSpendLimits)
    sms_allowed_regions: tuple[str, ...] = ()
    sms_denied_regions: tuple[str, ...] = ()
    # Satellite and other non-geographic numbers (+881, +882...) get no SMS unless allowed.
    sms_allow_non_geographic: bool = False
    backup_code_sets_per_user: RateLimit = field(default_factory=lambda: RateLimit(5, 3600))
    store_shards: int = 16
    sweep_batch_size: int = 500
    trusted_session_ttl_seconds: int = 7 * 24 * 3600
    policy_cache_seconds: float = 2.0
    # 0 writes each audit row at once; above it, rows are written in batches that often.
    audit_batch_seconds: float = 0.0
    # Where Twilio reports delivery (`MFA_PUBLIC_URL`); None asks for no reports.
    status_callback_url: str | None = None
    # `MFA_RESULT_WEBHOOK_URL` and its secret; None posts no results.
    result_webhook: ResultWebhookTarget | None = None
    # Longer than a live SMS send can take: a send begun more recently is another copy's.
    sms_in_flight_seconds: float = 0
    # A send unchanged this long is re-published by the sweep; a retry gets this much more.
    delivery_stale_seconds: float = 20
    retry_grace_seconds: float = 60
    idempotency_ttl_seconds: int = 24 * 3600
    idempotency_lease_seconds: int = 60
    # Consecutive wrong codes per user: slowed, then the TOTP and SMS factors lock.
    failure_budget: FailureBudget = field(default_factory=FailureBudget)


@dataclass(frozen=True, slots=True)
class Services:
    """What the API, the workers and the CLI call."""

    auditor: Auditor
    policies: PolicyService
    backup_codes: BackupCodeService
    trusted_sessions: TrustedSessionService
    sms_gate: SmsSendGate
    challenges: ChallengeService
    idempotency: IdempotencyService
    enrollment: EnrollmentService
    login: LoginService
    sms_delivery: SmsDeliveryService
    push_devices: PushDevices
    push_delivery: PushDeliveryService
    push_answers: PushAnswers
    delivery_status: DeliveryStatusService
    sweeps: SweepService
    admin: AdminService
    readiness: Readiness
    # Passkey and security-key registration (their logins run inside `challenges`).
    webauthn: WebAuthnEnrollment
    # Administrators' invitations to enable MFA (preauth reads them through `login`).
    invitations: InvitationService
    # Only when the deployment posts results (`MFA_RESULT_WEBHOOK_URL`).
    webhooks: ResultWebhooks | None


def build_services(ports: Ports, rules: Rules) -> Services:
    """Every service, each given every collaborator it has."""
    p = ports
    auditor = Auditor(log=p.audit_log, clock=p.clock, batch_seconds=rules.audit_batch_seconds)
    administrators = FirmAdministrators(factors=p.factors, auditor=auditor)
    invitations = InvitationService(
        invitations=p.invitations,
        administrators=administrators,
        auditor=auditor,
        publisher=p.publisher,
        clock=p.clock,
    )
    code_factor_lock = CodeFactorLock(
        factors=p.factors, auditor=auditor, clock=p.clock, metrics=p.metrics
    )
    failure_budget = FailureBudgetService(
        counter=p.failures,
        lock=code_factor_lock,
        budget=rules.failure_budget,
        clock=p.clock,
        metrics=p.metrics,
    )
    policies = PolicyService(
        policies=p.policies,
        factors=p.factors,
        auditor=auditor,
        clock=p.clock,
        administrators=administrators,
        sms_allowed_regions=rules.sms_allowed_regions,
        sms_denied_regions=rules.sms_denied_regions,
        cache_seconds=rules.policy_cache_seconds,
    )
    backup_codes = BackupCodeService(
        codes=p.backup_codes,
        factors=p.factors,
        store=p.store,
        secrets_box=p.secrets,
        audit=p.audit_log,
        clock=p.clock,
        hasher=p.code_hasher,
        limiter=p.limiter,
        sets_per_user=rules.backup_code_sets_per_user,
    )
    trusted_sessions = TrustedSessionService(
        sessions=p.trusted_sessions,
        audit=p.audit_log,
        clock=p.clock,
        ttl_seconds=rules.trusted_session_ttl_seconds,
    )
    sms_gate = SmsSendGate(
        guard=p.sms_spend_guard,
        secrets_box=p.secrets,
        clock=p.clock,
        limits=rules.sms_spend,
        phones=p.phones,
        allowed_regions=rules.sms_allowed_regions,
        denied_regions=rules.sms_denied_regions,
        allow_non_geographic=rules.sms_allow_non_geographic,
    )
    challenges = ChallengeService(
        store=p.store,
        factors=p.factors,
        publisher=p.publisher,
        limiter=p.limiter,
        login_counters=p.login_counters,
        secrets=p.secrets,
        clock=p.clock,
        rules=rules.challenges,
        shards=rules.store_shards,
        failure_budget=failure_budget,
        backup_codes=backup_codes,
        policies=policies,
        auditor=auditor,
        push_guard=p.push_guard,
        sms_gate=sms_gate,
        metrics=p.metrics,
        webauthn=WebAuthnLogins(
            credentials=p.webauthn_credentials,
            ceremony=p.webauthn_ceremony,
            store=p.store,
            auditor=auditor,
            # The failure budget's lock never applies to WebAuthn; a WebAuthn login lifts it.
            failure_budget=failure_budget,
        ),
    )
    enrollment = EnrollmentService(
        factors=p.factors,
        store=p.store,
        challenges=challenges,
        secrets_box=p.secrets,
        clock=p.clock,
        rules=rules.challenges,
        trusted_sessions=trusted_sessions,
        policies=policies,
        auditor=auditor,
        phones=p.phones,
        qr=p.qr,
    )
    return Services(
        auditor=auditor,
        policies=policies,
        backup_codes=backup_codes,
        trusted_sessions=trusted_sessions,
        sms_gate=sms_gate,
        challenges=challenges,
        idempotency=IdempotencyService(
            store=p.idempotency,
            secrets=p.secrets,
            ttl_seconds=rules.idempotency_ttl_seconds,
            lease_seconds=rules.idempotency_lease_seconds,
        ),
        enrollment=enrollment,
        login=LoginService(
            challenges=challenges,
            enrollment=enrollment,
            policies=policies,
            backup_codes=backup_codes,
            trusted_sessions=trusted_sessions,
            invitations=invitations,
        ),
        sms_delivery=SmsDeliveryService(
            store=p.store,
            factors=p.factors,
            sender=p.sms_sender,
            secrets=p.secrets,
            publisher=p.publisher,
            clock=p.clock,
            code_ttl_seconds=rules.challenges.lifetimes.sms,
            status_callback_url=rules.status_callback_url,
            auditor=auditor,
            metrics=p.metrics,
            in_flight_seconds=rules.sms_in_flight_seconds,
        ),
        push_devices=PushDevices(
            factors=p.factors, secrets=p.secrets, clock=p.clock, policies=policies, auditor=auditor
        ),
        push_delivery=PushDeliveryService(
            store=p.store,
            factors=p.factors,
            sender=p.push_sender,
            secrets=p.secrets,
            publisher=p.publisher,
            clock=p.clock,
            guard=p.push_guard,
            auditor=auditor,
            metrics=p.metrics,
        ),
        push_answers=PushAnswers(
            store=p.store,
            factors=p.factors,
            secrets=p.secrets,
            publisher=p.publisher,
            clock=p.clock,
            failure_budget=failure_budget,
            guard=p.push_guard,
            auditor=auditor,
            metrics=p.metrics,
        ),
        delivery_status=DeliveryStatusService(
            store=p.store,
            verifier=p.webhook_verifier,
            clock=p.clock,
            callback_base=rules.status_callback_url,
            metrics=p.metrics,
        ),
        sweeps=SweepService(
            store=p.store,
            publisher=p.publisher,
            clock=p.clock,
            batch_size=rules.sweep_batch_size,
            auditor=auditor,
            metrics=p.metrics,
            stale_delivery_seconds=rules.delivery_stale_seconds,
            retry_grace_seconds=rules.retry_grace_seconds,
        ),
        admin=AdminService(
            factors=p.factors,
            backup_codes=p.backup_codes,
            trusted_sessions=p.trusted_sessions,
            auditor=auditor,
            clock=p.clock,
            administrators=administrators,
            code_factor_lock=code_factor_lock,
            secrets_box=p.secrets,
            stored_secrets=p.stored_secrets,
        ),
        readiness=Readiness(store=p.store, factors=p.factors),
        webauthn=WebAuthnEnrollment(
            factors=p.factors,
            credentials=p.webauthn_credentials,
            ceremony_store=p.webauthn_ceremonies,
            ceremony=p.webauthn_ceremony,
            policies=policies,
            auditor=auditor,
            clock=p.clock,
        ),
        invitations=invitations,
        webhooks=None
        if rules.result_webhook is None
        else ResultWebhooks(
            url=rules.result_webhook.url,
            secret=rules.result_webhook.secret,
            sender=p.webhook_sender,
            clock=p.clock,
        ),
    )
