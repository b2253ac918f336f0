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
from mfa_pipeline.adapters.failure_counter import RedisFailureCounter, RedisLoginCounters
from mfa_pipeline.adapters.http_webhook import HttpxWebhookSender
from mfa_pipeline.adapters.phonenumbers_parser import PhonenumbersPhoneNumbers
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
from mfa_pipeline.adapters.segno_qr import SegnoQrRenderer
from mfa_pipeline.adapters.sms_spend import SMS_SPEND_KEY_LABEL, RedisSmsSpendGuard
from mfa_pipeline.adapters.sql_account import (
    SqlAuditLog,
    SqlBackupCodeRepository,
    SqlPolicyRepository,
    SqlTrustedSessionRepository,
)
from mfa_pipeline.adapters.sql_invitations import SqlInvitationRepository
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
from mfa_pipeline.domain.failure_budget import FailureBudget
from mfa_pipeline.domain.limits import RateLimit
from mfa_pipeline.domain.rules import ChallengeRules
from mfa_pipeline.domain.sms_spend import SmsSpendLimits
from mfa_pipeline.ports import NullMetrics
from mfa_pipeline.services.admin import AdminService
from mfa_pipeline.services.administrators import FirmAdministrators
from mfa_pipeline.services.audit import Auditor
from mfa_pipeline.services.failure_budget import CodeFactorLock
from mfa_pipeline.services.graph import (
    Ports,
    ResultWebhookTarget,
    Rules,
    Services,
    build_services,
)
from mfa_pipeline.tracing import instrument_redis

if TYPE_CHECKING:
    from mfa_pipeline.ports import (
        Clock,
        EventPublisher,
        Metrics,
        PushSender,
        SmsSender,
        WebhookVerifier,
    )


@dataclass(frozen=True)
class Container:
    """Everything a process needs, built once per process (after a worker forks)."""

    settings: Settings
    ports: Ports
    services: Services
    # The Redis client behind the store, the limiter and the guards: closed with the process.
    redis: RedisClient
    api_keys: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.services.auditor.flush()
        self.redis.close()


def sms_in_flight_seconds(settings: Settings) -> float:
    """Longer than a live send can take (connect and read may each take the timeout)."""
    return 2 * settings.twilio_timeout_seconds + 1


def challenge_rules(settings: Settings) -> ChallengeRules:
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


def rules_from(settings: Settings) -> Rules:
    return Rules(
        challenges=challenge_rules(settings),
        sms_spend=sms_spend_limits(settings),
        sms_allowed_regions=tuple(settings.sms_allowed_regions),
        sms_denied_regions=tuple(settings.sms_denied_regions),
        sms_allow_non_geographic=settings.sms_allow_non_geographic,
        backup_code_sets_per_user=RateLimit.parse(settings.limit_backup_code_sets_per_user),
        store_shards=settings.store_shards,
        sweep_batch_size=settings.sweep_batch_size,
        trusted_session_ttl_seconds=settings.trusted_session_ttl_seconds,
        policy_cache_seconds=settings.policy_cache_seconds,
        audit_batch_seconds=settings.audit_batch_seconds,
        status_callback_url=status_callback_url(settings),
        result_webhook=result_webhook_target(settings),
        sms_in_flight_seconds=sms_in_flight_seconds(settings),
        delivery_stale_seconds=settings.delivery_stale_seconds,
        retry_grace_seconds=settings.sms_retry_backoff_max_seconds,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        idempotency_lease_seconds=settings.idempotency_lease_seconds,
        failure_budget=failure_budget_from(settings),
    )


def failure_budget_from(settings: Settings) -> FailureBudget:
    return FailureBudget(
        limit=settings.failure_budget_limit,
        free=settings.failure_budget_free,
        max_delay_seconds=settings.failure_budget_max_delay_seconds,
        lock_seconds=settings.factor_lock_seconds,
    )


def result_webhook_target(settings: Settings) -> ResultWebhookTarget | None:
    if settings.result_webhook_url is None:
        return None
    if not settings.result_webhook_secret or len(settings.result_webhook_secret) < 16:  # noqa: PLR2004
        raise ConfigurationError(
            "MFA_RESULT_WEBHOOK_URL needs MFA_RESULT_WEBHOOK_SECRET of 16+ characters."
        )
    return ResultWebhookTarget(settings.result_webhook_url, settings.result_webhook_secret)


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


def build_ports(
    settings: Settings,
    client: RedisClient,
    *,
    clock: Clock | None = None,
    publisher: EventPublisher | None = None,
    sms_sender: SmsSender | None = None,
    push_sender: PushSender | None = None,
) -> Ports:
    """The production adapters for `settings`; tests may hand in a clock or a sender of theirs."""
    store = RedisChallengeStore(
        client,
        prefix=settings.key_prefix,
        shards=settings.store_shards,
        retention_seconds=settings.challenge_retention_seconds,
    )
    engine = create_engine_for(settings.effective_database_url)
    box = AesGcmSecretBox(parse_keys(settings.encryption_keys))
    limiter = RedisRateLimiter(client, prefix=settings.key_prefix)
    failures = RedisFailureCounter(client, prefix=settings.key_prefix)
    return Ports(
        clock=clock or SystemClock(),
        store=store,
        limiter=limiter,
        idempotency=RedisIdempotencyStore(
            client, prefix=settings.key_prefix, shards=settings.store_shards
        ),
        factors=SqlFactorRepository(engine),
        failures=failures,
        login_counters=RedisLoginCounters(limiter, failures),
        secrets=box,
        stored_secrets=SqlSecretRotationRepository(engine),
        backup_codes=SqlBackupCodeRepository(engine),
        code_hasher=Argon2CodeHasher(),
        trusted_sessions=SqlTrustedSessionRepository(engine),
        policies=SqlPolicyRepository(engine),
        audit_log=SqlAuditLog(engine),
        publisher=publisher or build_publisher(settings),
        sms_sender=sms_sender or build_sms_sender(settings),
        sms_spend_guard=RedisSmsSpendGuard(
            client,
            prefix=settings.key_prefix,
            limits=sms_spend_limits(settings),
            hash_key=box.derive_key(SMS_SPEND_KEY_LABEL),
        ),
        push_sender=push_sender or build_push_sender(settings),
        push_guard=RedisPushGuard(client, prefix=settings.key_prefix),
        webhook_sender=HttpxWebhookSender(timeout=settings.webhook_timeout_seconds),
        webhook_verifier=build_webhook_verifier(settings),
        webauthn_credentials=SqlWebAuthnCredentialRepository(engine),
        invitations=SqlInvitationRepository(engine),
        webauthn_ceremonies=RedisWebAuthnCeremonyStore(client, prefix=settings.key_prefix),
        webauthn_ceremony=PyWebAuthnCeremony(
            rp_id=settings.webauthn_rp_id,
            rp_name=settings.webauthn_rp_name,
            origins=settings.webauthn_origins,
        ),
        phones=PhonenumbersPhoneNumbers(),
        qr=SegnoQrRenderer(),
        metrics=build_metrics(settings, client),
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
    client = build_redis_client(settings, settings.redis_url)
    ports = build_ports(
        settings,
        client,
        clock=clock,
        publisher=publisher,
        sms_sender=sms_sender,
        push_sender=push_sender,
    )
    return Container(
        settings=settings,
        ports=ports,
        services=build_services(ports, rules_from(settings)),
        redis=client,
        api_keys=parse_api_keys(settings.api_keys),
    )


def build_admin(settings: Settings, *, clock: Clock | None = None) -> AdminService:
    """The operator's service for the `admin` commands: SQL only, no Redis, no broker.

    The one service built outside `build_services`: the commands must run where only the
    database is reachable, and the admin service needs nothing else.
    """
    settings = with_dev_keys(settings)
    clock = clock or SystemClock()
    engine = create_engine_for(settings.effective_database_url)
    factors = SqlFactorRepository(engine)
    auditor = Auditor(log=SqlAuditLog(engine), clock=clock)
    return AdminService(
        factors=factors,
        backup_codes=SqlBackupCodeRepository(engine),
        trusted_sessions=SqlTrustedSessionRepository(engine),
        auditor=auditor,
        clock=clock,
        administrators=FirmAdministrators(factors=factors, auditor=auditor),
        # An operator's lift is audited; the API processes' metrics do not see it.
        code_factor_lock=CodeFactorLock(
            factors=factors, auditor=auditor, clock=clock, metrics=NullMetrics()
        ),
        secrets_box=AesGcmSecretBox(parse_keys(settings.encryption_keys)),
        stored_secrets=SqlSecretRotationRepository(engine),
    )
