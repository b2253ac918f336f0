"""The composition root: reads settings, picks adapters, wires services. Nothing else does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from mfa_pipeline.adapters.argon2_hasher import Argon2CodeHasher
from mfa_pipeline.adapters.crypto import AesGcmSecretBox, parse_keys
from mfa_pipeline.adapters.redis_store import RedisChallengeStore, RedisRateLimiter
from mfa_pipeline.adapters.sql_account import (
    SqlAuditLog,
    SqlBackupCodeRepository,
    SqlPolicyRepository,
    SqlTrustedSessionRepository,
)
from mfa_pipeline.adapters.sql_repository import SqlFactorRepository, create_engine_for
from mfa_pipeline.adapters.sql_secrets import SqlSecretRotationRepository
from mfa_pipeline.clock import SystemClock
from mfa_pipeline.config import Settings, SmsProvider
from mfa_pipeline.devkeys import ConfigurationError, with_dev_keys
from mfa_pipeline.domain.challenges import Lifetimes
from mfa_pipeline.domain.limits import RateLimit
from mfa_pipeline.domain.rules import ChallengeRules
from mfa_pipeline.services.admin import AdminService
from mfa_pipeline.services.audit import Auditor
from mfa_pipeline.services.backup_codes import BackupCodeService
from mfa_pipeline.services.challenges import ChallengeService
from mfa_pipeline.services.delivery import SmsDeliveryService
from mfa_pipeline.services.enrollment import EnrollmentService
from mfa_pipeline.services.policies import PolicyService
from mfa_pipeline.services.sweeps import SweepService
from mfa_pipeline.services.trusted_sessions import TrustedSessionService

if TYPE_CHECKING:
    from mfa_pipeline.ports import (
        AuditLog,
        BackupCodeRepository,
        ChallengeStore,
        Clock,
        EventPublisher,
        FactorRepository,
        PolicyRepository,
        RateLimiter,
        SecretBox,
        SmsSender,
        TrustedSessionRepository,
    )


@dataclass
class Container:
    """Everything a process needs, built once per process (after a worker forks)."""

    settings: Settings
    clock: Clock
    redis: redis.Redis
    store: ChallengeStore
    limiter: RateLimiter
    factors: FactorRepository
    secrets: SecretBox
    sms_sender: SmsSender
    publisher: EventPublisher
    challenges: ChallengeService
    enrollment: EnrollmentService
    delivery: SmsDeliveryService
    sweeps: SweepService
    backup_codes: BackupCodeRepository
    trusted_sessions: TrustedSessionRepository
    policies: PolicyRepository
    audit: AuditLog
    backup_code_service: BackupCodeService
    trusted_session_service: TrustedSessionService
    auditor: Auditor
    policy_service: PolicyService
    admin: AdminService
    api_keys: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.auditor.flush()
        self.redis.close()


def rules_from(settings: Settings) -> ChallengeRules:
    return ChallengeRules(
        lifetimes=Lifetimes(
            sms=settings.sms_code_ttl_seconds,
            push=settings.push_ttl_seconds,
            other=settings.challenge_ttl_seconds,
        ),
        max_attempts=settings.max_attempts,
        max_resends=settings.max_resends,
        resend_interval_seconds=settings.resend_interval_seconds,
        challenges_per_user=RateLimit.parse(settings.limit_challenges_per_user),
        challenges_per_ip=RateLimit.parse(settings.limit_challenges_per_ip),
        verifications_per_user=RateLimit.parse(settings.limit_verifications_per_user),
        verifications_per_ip=RateLimit.parse(settings.limit_verifications_per_ip),
        sms_max_retries=settings.sms_max_retries,
        totp_issuer=settings.totp_issuer,
    )


def parse_api_keys(entries: list[str]) -> dict[str, str]:
    """`app:key` entries → {key: app}. Keys are compared in constant time by the API."""
    keys: dict[str, str] = {}
    for entry in entries:
        app, sep, key = entry.partition(":")
        if not sep or not app or len(key) < 16:  # noqa: PLR2004 - refuse guessable keys
            raise ConfigurationError(
                "MFA_API_KEYS entries must look like app:key with a key of 16+ characters."
            )
        keys[key] = app
    return keys


def build_sms_sender(settings: Settings) -> SmsSender:
    if settings.sms_provider is SmsProvider.TWILIO:
        from mfa_pipeline.adapters.twilio_sms import TwilioSmsSender  # noqa: PLC0415

        if not (
            settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
        ):
            raise ConfigurationError(
                "MFA_SMS_PROVIDER=twilio needs MFA_TWILIO_ACCOUNT_SID, MFA_TWILIO_AUTH_TOKEN "
                "and MFA_TWILIO_FROM."
            )
        return TwilioSmsSender(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from,
            api_base_url=settings.twilio_api_base_url,
            timeout=settings.twilio_timeout_seconds,
        )
    from mfa_pipeline.adapters.outbox import OutboxSmsSender  # noqa: PLC0415

    return OutboxSmsSender(settings.outbox_path)


def status_callback_url(settings: Settings) -> str | None:
    if not settings.public_url:
        return None
    return settings.public_url.rstrip("/") + "/v1/providers/twilio/status"


def build_publisher(settings: Settings) -> EventPublisher:
    from mfa_pipeline.adapters.celery_publisher import CeleryEventPublisher  # noqa: PLC0415
    from workers.app import create_celery_app  # noqa: PLC0415 - the worker app imports us

    return CeleryEventPublisher(create_celery_app(settings))


def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    publisher: EventPublisher | None = None,
    sms_sender: SmsSender | None = None,
) -> Container:
    settings = with_dev_keys(settings)
    if settings.redis_url is None:
        raise ConfigurationError(
            "MFA_REDIS_URL is not set; `mfa-pipeline up` starts an embedded Redis for you."
        )
    clock = clock or SystemClock()
    client = redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )
    store = RedisChallengeStore(
        client,
        prefix=settings.key_prefix,
        shards=settings.store_shards,
        retention_seconds=settings.challenge_retention_seconds,
    )
    limiter = RedisRateLimiter(client, prefix=settings.key_prefix)
    engine = create_engine_for(settings.effective_database_url)
    factors = SqlFactorRepository(engine)
    box = AesGcmSecretBox(parse_keys(settings.encryption_keys))
    publisher = publisher or build_publisher(settings)
    sender = sms_sender or build_sms_sender(settings)
    rules = rules_from(settings)
    backup_code_repo = SqlBackupCodeRepository(engine)
    trusted_session_repo = SqlTrustedSessionRepository(engine)
    audit_log = SqlAuditLog(engine)
    auditor = Auditor(log=audit_log, clock=clock, batch_seconds=settings.audit_batch_seconds)
    policies = SqlPolicyRepository(engine)
    policy_service = PolicyService(
        policies=policies,
        factors=factors,
        auditor=auditor,
        clock=clock,
        sms_allowed_regions=settings.sms_allowed_regions,
        sms_denied_regions=settings.sms_denied_regions,
        cache_seconds=settings.policy_cache_seconds,
    )
    backup_code_service = BackupCodeService(
        codes=backup_code_repo,
        factors=factors,
        store=store,
        secrets_box=box,
        audit=audit_log,
        clock=clock,
        hasher=Argon2CodeHasher(),
    )
    trusted_session_service = TrustedSessionService(
        sessions=trusted_session_repo,
        audit=audit_log,
        clock=clock,
        ttl_seconds=settings.trusted_session_ttl_seconds,
    )
    challenges = ChallengeService(
        store=store,
        factors=factors,
        publisher=publisher,
        limiter=limiter,
        secrets=box,
        clock=clock,
        rules=rules,
        shards=settings.store_shards,
        backup_codes=backup_code_service,
        policies=policy_service,
        auditor=auditor,
    )
    return Container(
        settings=settings,
        clock=clock,
        redis=client,
        store=store,
        limiter=limiter,
        factors=factors,
        secrets=box,
        sms_sender=sender,
        publisher=publisher,
        challenges=challenges,
        enrollment=EnrollmentService(
            factors=factors,
            store=store,
            challenges=challenges,
            secrets_box=box,
            clock=clock,
            rules=rules,
            trusted_sessions=trusted_session_service,
            policies=policy_service,
            auditor=auditor,
        ),
        delivery=SmsDeliveryService(
            store=store,
            factors=factors,
            sender=sender,
            secrets=box,
            publisher=publisher,
            clock=clock,
            code_ttl_seconds=settings.sms_code_ttl_seconds,
            status_callback_url=status_callback_url(settings),
            auditor=auditor,
        ),
        sweeps=SweepService(
            store=store,
            publisher=publisher,
            clock=clock,
            batch_size=settings.sweep_batch_size,
            auditor=auditor,
        ),
        backup_codes=backup_code_repo,
        trusted_sessions=trusted_session_repo,
        policies=policies,
        audit=audit_log,
        backup_code_service=backup_code_service,
        trusted_session_service=trusted_session_service,
        auditor=auditor,
        policy_service=policy_service,
        admin=AdminService(
            factors=factors,
            backup_codes=backup_code_repo,
            trusted_sessions=trusted_session_repo,
            auditor=auditor,
            clock=clock,
            secrets_box=box,
            stored_secrets=SqlSecretRotationRepository(engine),
        ),
        api_keys=parse_api_keys(settings.api_keys),
    )


def build_admin(settings: Settings, *, clock: Clock | None = None) -> AdminService:
    """The operator's service for the `admin` commands: SQL only, no Redis, no broker."""
    settings = with_dev_keys(settings)
    clock = clock or SystemClock()
    engine = create_engine_for(settings.effective_database_url)
    return AdminService(
        factors=SqlFactorRepository(engine),
        backup_codes=SqlBackupCodeRepository(engine),
        trusted_sessions=SqlTrustedSessionRepository(engine),
        auditor=Auditor(log=SqlAuditLog(engine), clock=clock),
        clock=clock,
        secrets_box=AesGcmSecretBox(parse_keys(settings.encryption_keys)),
        stored_secrets=SqlSecretRotationRepository(engine),
    )
