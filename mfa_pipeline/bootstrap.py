"""The composition root: reads settings, picks adapters, wires services. Nothing else does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from redis.cluster import RedisCluster

from mfa_pipeline.adapters.argon2_hasher import Argon2CodeHasher
from mfa_pipeline.adapters.celery_app import QUEUES, create_producer
from mfa_pipeline.adapters.celery_publisher import CeleryEventPublisher
from mfa_pipeline.adapters.crypto import AesGcmSecretBox, parse_keys
from mfa_pipeline.adapters.prometheus_metrics import CeleryQueueDepths, PrometheusMetrics
from mfa_pipeline.adapters.push_guard import RedisPushGuard
from mfa_pipeline.adapters.py_webauthn import PyWebAuthnCeremony
from mfa_pipeline.adapters.redis_idempotency import RedisIdempotencyStore
from mfa_pipeline.adapters.redis_store import (
    RedisChallengeStore,
    RedisClient,
    RedisRateLimiter,
)
from mfa_pipeline.adapters.redis_webauthn import RedisWebAuthnCeremonyStore
from mfa_pipeline.adapters.sms_spend import SMS_SPEND_KEY_LABEL, RedisSmsSpendGuard
from mfa_pipeline.adapters.sql_account import (
    SqlAuditLog,
    SqlBackupCodeRepository,
    SqlPolicyRepository,
    SqlTrustedSessionRepository,
)
from mfa_pipeline.adapters.sql_repository import SqlFactorRepository, create_engine_for
from mfa_pipeline.adapters.sql_secrets import SqlSecretRotationRepository
from mfa_pipeline.adapters.sql_webauthn import SqlWebAuthnCredentialRepository
from mfa_pipeline.adapters.system_clock import SystemClock
from mfa_pipeline.adapters.webhook_verifiers import NullWebhookVerifier, TwilioWebhookVerifier
from mfa_pipeline.config import (
    ConfigurationError,
    PushProvider,
    Settings,
    SmsProvider,
    with_dev_keys,
)
from mfa_pipeline.domain.challenges import Lifetimes
from mfa_pipeline.domain.limits import RateLimit
from mfa_pipeline.domain.rules import ChallengeRules
from mfa_pipeline.domain.sms_spend import SmsSpendLimits
from mfa_pipeline.services.admin import AdminService
from mfa_pipeline.services.audit import Auditor
from mfa_pipeline.services.backup_codes import BackupCodeService
from mfa_pipeline.services.challenges import ChallengeService
from mfa_pipeline.services.delivery import SmsDeliveryService
from mfa_pipeline.services.delivery_status import DeliveryStatusService
from mfa_pipeline.services.enrollment import EnrollmentService
from mfa_pipeline.services.idempotency import IdempotencyService
from mfa_pipeline.services.policies import PolicyService
from mfa_pipeline.services.push import PushAnswers, PushDeliveryService, PushDevices
from mfa_pipeline.services.sms_spend import SmsSendGate
from mfa_pipeline.services.sweeps import SweepService
from mfa_pipeline.services.trusted_sessions import TrustedSessionService
from mfa_pipeline.services.webauthn import NoFailureBudget, WebAuthnEnrollment, WebAuthnLogins
from mfa_pipeline.services.webhooks import ResultWebhooks
from mfa_pipeline.tracing import instrument_redis

if TYPE_CHECKING:
    from mfa_pipeline.ports import (
        AuditLog,
        BackupCodeRepository,
        ChallengeStore,
        Clock,
        EventPublisher,
        FactorRepository,
        Metrics,
        PolicyRepository,
        PushSender,
        RateLimiter,
        SecretBox,
        SmsSender,
        TrustedSessionRepository,
        WebhookVerifier,
    )


@dataclass
class Container:
    """Everything a process needs, built once per process (after a worker forks)."""

    settings: Settings
    clock: Clock
    redis: RedisClient
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
    push_devices: PushDevices
    push_delivery: PushDeliveryService
    push_answers: PushAnswers
    webhooks: ResultWebhooks | None
    delivery_status: DeliveryStatusService
    metrics: Metrics
    idempotency: IdempotencyService
    webauthn: WebAuthnEnrollment
    api_keys: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.auditor.flush()
        self.redis.close()


def sms_in_flight_seconds(settings: Settings) -> float:
    """Longer than a live send can take (connect and read may each take the timeout)."""
    return 2 * settings.twilio_timeout_seconds + 1


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
        totp_issuers=settings.totp_issuer_by_application,
    )


def sms_spend_limits(settings: Settings) -> SmsSpendLimits:
    return SmsSpendLimits(
        per_number=RateLimit.parse(settings.sms_limit_per_number),
        per_prefix=RateLimit.parse(settings.sms_limit_per_prefix),
        per_country=RateLimit.parse(settings.sms_limit_per_country),
        breaker_per_minute=settings.sms_breaker_per_minute,
        breaker_scoped_per_minute=settings.sms_breaker_scoped_per_minute,
        breaker_cooldown_seconds=settings.sms_breaker_cooldown_seconds,
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


def build_push_sender(settings: Settings) -> PushSender:
    if settings.push_provider is PushProvider.FCM:
        from mfa_pipeline.adapters.fcm_push import FcmPushSender  # noqa: PLC0415

        if settings.fcm_service_account_file is None:
            raise ConfigurationError("MFA_PUSH_PROVIDER=fcm needs MFA_FCM_SERVICE_ACCOUNT_FILE.")
        return FcmPushSender(
            settings.fcm_service_account_file, api_base_url=settings.fcm_api_base_url
        )
    from mfa_pipeline.adapters.outbox import OutboxPushSender  # noqa: PLC0415

    return OutboxPushSender(settings.outbox_path)


def build_metrics(settings: Settings, store_client: RedisClient) -> Metrics:
    """Prometheus metrics; queue depths come from the broker when it is Redis (`LLEN`)."""
    broker = settings.effective_broker_url
    depths = None
    if broker.startswith(("redis://", "rediss://", "unix://")):
        client = (
            store_client
            if broker == settings.redis_url and isinstance(store_client, redis.Redis)
            else redis.Redis.from_url(broker, socket_connect_timeout=2, socket_timeout=5)
        )
        depths = CeleryQueueDepths(client, QUEUES)
    applications = set(parse_api_keys(settings.api_keys).values())
    return PrometheusMetrics(applications=applications, queue_depths=depths)


def build_webhook_verifier(settings: Settings) -> WebhookVerifier:
    """Twilio's signature check when its auth token is known; otherwise every call is refused."""
    if settings.twilio_auth_token:
        return TwilioWebhookVerifier(settings.twilio_auth_token)
    return NullWebhookVerifier()


def build_redis_client(settings: Settings, url: str) -> RedisClient:
    """One Redis, or a Redis Cluster found through the node `url` names (MFA_REDIS_CLUSTER)."""
    timeouts: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
    if not settings.redis_cluster:
        return instrument_redis(redis.Redis.from_url(url, health_check_interval=30, **timeouts))
    if settings.broker_url is None:
        raise ConfigurationError(
            "MFA_REDIS_CLUSTER=true needs MFA_BROKER_URL: Celery's Redis broker speaks to one "
            "Redis, not a cluster (use a separate Redis, or RabbitMQ)."
        )
    # Asks the node for the slot map at once; MOVED/ASK and failovers are followed afterwards.
    return instrument_redis(RedisCluster.from_url(url, **timeouts))


def status_callback_url(settings: Settings) -> str | None:
    if not settings.public_url:
        return None
    return settings.public_url.rstrip("/") + "/v1/providers/twilio/status"


def build_publisher(settings: Settings) -> EventPublisher:
    return CeleryEventPublisher(
        create_producer(settings), result_webhooks=settings.result_webhook_url is not None
    )


def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    publisher: EventPublisher | None = None,
    sms_sender: SmsSender | None = None,
    push_sender: PushSender | None = None,
) -> Container:
    settings = with_dev_keys(settings)
    if settings.redis_url is None:
        raise ConfigurationError(
            "MFA_REDIS_URL is not set; `mfa-pipeline up` starts an embedded Redis for you."
        )
    clock = clock or SystemClock()
    client = build_redis_client(settings, settings.redis_url)
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
        limiter=limiter,
        sets_per_user=RateLimit.parse(settings.limit_backup_code_sets_per_user),
    )
    trusted_session_service = TrustedSessionService(
        sessions=trusted_session_repo,
        audit=audit_log,
        clock=clock,
        ttl_seconds=settings.trusted_session_ttl_seconds,
    )
    push_guard = RedisPushGuard(client, prefix=settings.key_prefix)
    spend_limits = sms_spend_limits(settings)
    sms_gate = SmsSendGate(
        guard=RedisSmsSpendGuard(
            client,
            prefix=settings.key_prefix,
            limits=spend_limits,
            hash_key=box.derive_key(SMS_SPEND_KEY_LABEL),
        ),
        secrets_box=box,
        clock=clock,
        limits=spend_limits,
        allowed_regions=settings.sms_allowed_regions,
        denied_regions=settings.sms_denied_regions,
        allow_non_geographic=settings.sms_allow_non_geographic,
    )
    push_sender = push_sender or build_push_sender(settings)
    metrics = build_metrics(settings, client)
    webauthn_credentials = SqlWebAuthnCredentialRepository(engine)
    ceremony_store = RedisWebAuthnCeremonyStore(client, prefix=settings.key_prefix)
    ceremony = PyWebAuthnCeremony(
        rp_id=settings.webauthn_rp_id,
        rp_name=settings.webauthn_rp_name,
        origins=settings.webauthn_origins,
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
        push_guard=push_guard,
        sms_gate=sms_gate,
        metrics=metrics,
        webauthn=WebAuthnLogins(
            credentials=webauthn_credentials,
            ceremony=ceremony,
            store=store,
            auditor=auditor,
            # The failure budget's lock never applies to WebAuthn; its lifting plugs in here.
            failure_budget=NoFailureBudget(),
        ),
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
        idempotency=IdempotencyService(
            store=RedisIdempotencyStore(
                client, prefix=settings.key_prefix, shards=settings.store_shards
            ),
            secrets=box,
            ttl_seconds=settings.idempotency_ttl_seconds,
            lease_seconds=settings.idempotency_lease_seconds,
        ),
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
            metrics=metrics,
            in_flight_seconds=sms_in_flight_seconds(settings),
        ),
        sweeps=SweepService(
            store=store,
            publisher=publisher,
            clock=clock,
            batch_size=settings.sweep_batch_size,
            auditor=auditor,
            metrics=metrics,
            stale_delivery_seconds=settings.delivery_stale_seconds,
            retry_grace_seconds=settings.sms_retry_backoff_max_seconds,
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
        push_devices=PushDevices(
            factors=factors, secrets=box, clock=clock, policies=policy_service, auditor=auditor
        ),
        push_delivery=PushDeliveryService(
            store=store,
            factors=factors,
            sender=push_sender,
            secrets=box,
            publisher=publisher,
            clock=clock,
            guard=push_guard,
            auditor=auditor,
            metrics=metrics,
        ),
        push_answers=PushAnswers(
            store=store,
            factors=factors,
            secrets=box,
            publisher=publisher,
            clock=clock,
            guard=push_guard,
            auditor=auditor,
            metrics=metrics,
        ),
        delivery_status=DeliveryStatusService(
            store=store,
            verifier=build_webhook_verifier(settings),
            clock=clock,
            callback_base=status_callback_url(settings),
            metrics=metrics,
        ),
        metrics=metrics,
        webauthn=WebAuthnEnrollment(
            factors=factors,
            credentials=webauthn_credentials,
            ceremony_store=ceremony_store,
            ceremony=ceremony,
            policies=policy_service,
            auditor=auditor,
            clock=clock,
        ),
        webhooks=build_webhooks(settings, clock),
        api_keys=parse_api_keys(settings.api_keys),
    )


def build_webhooks(settings: Settings, clock: Clock) -> ResultWebhooks | None:
    if settings.result_webhook_url is None:
        return None
    if not settings.result_webhook_secret or len(settings.result_webhook_secret) < 16:  # noqa: PLR2004
        raise ConfigurationError(
            "MFA_RESULT_WEBHOOK_URL needs MFA_RESULT_WEBHOOK_SECRET of 16+ characters."
        )
    from mfa_pipeline.adapters.http_webhook import HttpxWebhookSender  # noqa: PLC0415

    return ResultWebhooks(
        url=settings.result_webhook_url,
        secret=settings.result_webhook_secret,
        sender=HttpxWebhookSender(timeout=settings.webhook_timeout_seconds),
        clock=clock,
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
