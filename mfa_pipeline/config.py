"""Settings: the one place that reads the environment (the `MFA_*` variables of the contract).

Development keys are generated once into the data directory so `up` needs no configuration;
outside development they are refused: production must bring its own keys.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SmsProvider(StrEnum):
    TWILIO = "twilio"
    OUTBOX = "outbox"


class PushProvider(StrEnum):
    FCM = "fcm"
    OUTBOX = "outbox"


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service; defaults are the embedded single-machine mode."""

    model_config = SettingsConfigDict(env_prefix="MFA_", extra="ignore", frozen=True)

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path(".mfa-data")
    log_level: str = "INFO"
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")

    redis_url: str | None = None
    # MFA_REDIS_URL names one node of a Redis Cluster (any node: the client learns the rest).
    # Kombu's Redis transport speaks to a single Redis, so a cluster needs MFA_BROKER_URL.
    redis_cluster: bool = False
    broker_url: str | None = None
    database_url: str | None = None
    key_prefix: str = "mfa"

    # "app:key,app:key"; empty means a generated development key.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Comma list of urlsafe-base64 32-byte keys; the first encrypts, all decrypt.
    encryption_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    sms_provider: SmsProvider = SmsProvider.OUTBOX
    push_provider: PushProvider = PushProvider.OUTBOX
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_api_base_url: str | None = None
    twilio_timeout_seconds: float = 10.0
    fcm_service_account_file: Path | None = None
    fcm_api_base_url: str | None = None
    public_url: str | None = None
    # ISO 3166 regions SMS enrollment accepts ("US,CA"); empty allows every region but denied.
    sms_allowed_regions: Annotated[list[str], NoDecode] = Field(default_factory=list)
    sms_denied_regions: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Satellite and other non-geographic numbers (+881, +882, ...), a toll-fraud favourite:
    # refused for SMS unless a deployment really has users on them.
    sms_allow_non_geographic: bool = False
    # SMS pumping and bombing: sliding windows ("count/seconds") per destination number, per
    # number block (first 6 national digits) and per country, checked before any SMS is queued.
    sms_limit_per_number: str = "10/3600"
    sms_limit_per_prefix: str = "30/3600"
    sms_limit_per_country: str = "1000/3600"
    # Circuit breakers: past `scoped` SMS in a minute from one application to one country,
    # that pair pauses for the cooldown; past `per_minute` deployment-wide, every SMS pauses
    # (the last resort, for a surge spread over applications and countries).
    sms_breaker_per_minute: int = Field(default=300, ge=1)
    sms_breaker_scoped_per_minute: int = Field(default=100, ge=1)
    sms_breaker_cooldown_seconds: int = Field(default=300, ge=1)

    sms_code_ttl_seconds: int = Field(default=600, ge=1)
    push_ttl_seconds: int = Field(default=120, ge=1)
    challenge_ttl_seconds: int = Field(default=300, ge=1)
    trusted_session_ttl_seconds: int = Field(default=604800, ge=60)
    sweep_interval_seconds: float = Field(default=15, gt=0)
    sweep_batch_size: int = Field(default=500, ge=1)
    # A send that has not moved this long (queued and never claimed, or claimed and never
    # finished: its worker died) is published again, checked every interval: a delivery lost
    # with a worker leaves within about their sum.
    delivery_stale_seconds: float = Field(default=20, gt=0)
    delivery_recovery_interval_seconds: float = Field(default=5, gt=0)
    # A standby beat takes over this long after the active one stopped renewing its lock.
    beat_lock_seconds: float = Field(default=30, gt=0)
    # How long a finished or expired challenge stays readable (GET says `expired`, not 404).
    challenge_retention_seconds: int = Field(default=3600, ge=1)
    store_shards: int = Field(default=16, ge=1, le=4096)

    # The name an authenticator app shows above the code: the deployment's, and per application
    # of MFA_API_KEYS ("app:Issuer,app:Issuer"), since each login backend has its own brand.
    totp_issuer: str = Field(default="mfa-pipeline", min_length=1, pattern="^[^:]+$")
    totp_issuers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_attempts: int = Field(default=5, ge=1)
    max_resends: int = Field(default=3, ge=0)
    resend_interval_seconds: int = Field(default=30, ge=0)

    # Fixed-window limits: "count/seconds".
    limit_challenges_per_user: str = "10/600"
    limit_challenges_per_ip: str = "60/600"
    limit_verifications_per_user: str = "30/600"
    limit_verifications_per_ip: str = "120/600"
    # New backup-code sets per user (each is ten argon2 hashes); a person needs one now and then.
    limit_backup_code_sets_per_user: str = "5/3600"
    # argon2 work of backup-code generation runs on at most this many threads, with at most
    # `backup_code_queue` requests waiting; past that, 503 `unavailable` with Retry-After.
    backup_code_workers: int = Field(default=1, ge=1, le=64)
    backup_code_queue: int = Field(default=8, ge=0, le=1024)

    # The account-wide failure budget (NIST SP 800-63B rev. 4 §3.2.2: at most 100 consecutive
    # failures): the first `free` wrong codes in a row cost no wait, the next ones double it up
    # to the cap, and at the limit the TOTP and SMS factors lock for `factor_lock_seconds`
    # (unless lifted sooner by a push, WebAuthn or backup-code login, or a reset).
    failure_budget_limit: int = Field(default=100, ge=1, le=100)
    failure_budget_free: int = Field(default=20, ge=1)
    failure_budget_max_delay_seconds: int = Field(default=60, ge=1, le=3600)
    factor_lock_seconds: int = Field(default=30 * 24 * 3600, ge=60)

    sms_max_retries: int = Field(default=5, ge=0)
    sms_retry_backoff_seconds: float = Field(default=2.0, ge=0)
    # At most 300 s (MAX_RETRY_COUNTDOWN_SECONDS of adapters/celery_app.py): a Redis broker's
    # visibility timeout must stay far above any countdown, or a task waiting for its ETA runs
    # twice.
    sms_retry_backoff_max_seconds: float = Field(default=60.0, ge=0, le=300)
    # A push lives 2 minutes: a few quick retries (same backoff settings as SMS) at most.
    push_max_retries: int = Field(default=3, ge=0)
    # Optional: POST each challenge's final status here, HMAC-signed with the secret.
    result_webhook_url: str | None = None
    result_webhook_secret: str | None = None
    webhook_max_retries: int = Field(default=8, ge=0)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)

    # Login outcomes reach the audit table in batches at most this old (0: one INSERT each).
    audit_batch_seconds: float = Field(default=0.05, ge=0, le=5)
    # A firm's policy is re-read at most this long after another process changed it.
    policy_cache_seconds: float = Field(default=2.0, ge=0, le=60)

    # Idempotency-Key: how long a first answer is replayed, and how long a request may hold
    # its key before a repeat may take it over (longer than any request runs).
    idempotency_ttl_seconds: int = Field(default=86400, ge=60)
    idempotency_lease_seconds: int = Field(default=60, ge=1)

    # WebAuthn (passkeys, security keys): the relying party is the site users sign in to,
    # and only pages on these origins may register or use a credential. The defaults fit the
    # demo app on this machine (`mfa-pipeline up --demo`, opened as http://localhost:8001).
    webauthn_rp_id: str = Field(default="localhost", min_length=1, max_length=253)
    webauthn_rp_name: str = Field(default="mfa-pipeline", min_length=1, max_length=64)
    webauthn_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:8001", "http://localhost:8000"]
    )

    max_body_bytes: int = Field(default=16384, ge=1024)
    long_poll_max_seconds: int = Field(default=30, ge=0, le=30)

    @field_validator(
        "api_keys",
        "encryption_keys",
        "sms_allowed_regions",
        "sms_denied_regions",
        "webauthn_origins",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("totp_issuers", mode="before")
    @classmethod
    def _issuer_entries(cls, value: object) -> object:
        entries = _split_commas(value)
        for entry in entries if isinstance(entries, list) else []:
            application, _, issuer = str(entry).partition(":")
            if not application.strip() or not issuer.strip() or ":" in issuer:
                # A colon separates issuer and account in the otpauth label (Key Uri Format).
                raise ValueError("entries are application:Issuer, with no other colon")
        return entries

    @property
    def totp_issuer_by_application(self) -> dict[str, str]:
        return {
            application.strip(): issuer.strip()
            for application, _, issuer in (entry.partition(":") for entry in self.totp_issuers)
        }

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "mfa.sqlite3"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def effective_broker_url(self) -> str:
        if self.redis_cluster and self.broker_url is None:
            raise RuntimeError(
                "MFA_REDIS_CLUSTER=true needs MFA_BROKER_URL: a single Redis or RabbitMQ broker"
            )
        broker = self.broker_url or self.redis_url
        if broker is None:
            raise RuntimeError("MFA_REDIS_URL is not set and no embedded Redis is running")
        return broker

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "outbox.jsonl"


class SettingsError(ValueError):
    """A setting the service cannot run with; the message names the variable, one line."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    """`MFA_ENV: Input should be ...`: the variable and the rule, never the value (a secret?)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        variable = f"MFA_{name.upper()}" if name in Settings.model_fields else name or "settings"
        problems.append(f"{variable}: {error['msg']}")
    return "invalid setting " + "; ".join(problems)


DEV_APPLICATION = "dev"
DEV_KEY_PREFIX = "dev_"


class ConfigurationError(RuntimeError):
    """The settings cannot run safely; the message says which variable to set."""


def _read_or_create(path: Path, make: str) -> str:
    """The key in `path`, or `make` written there if no process has written one yet.

    The processes `up` starts read it at the same moment: the key is written whole under a
    private name, then linked into place (atomic, and refused if another was first), so no
    process can read a half-written file and run with an empty key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_text().strip()
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(make + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        draft.unlink(missing_ok=True)
    return make


def _new_encryption_key() -> str:
    """A 256-bit key in the form `MFA_ENCRYPTION_KEYS` takes (URL-safe base64)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def with_dev_keys(settings: Settings) -> Settings:
    """Fill missing API and encryption keys with persistent development ones (dev and test only)."""
    missing = [
        name
        for name, value in (
            ("MFA_API_KEYS", settings.api_keys),
            ("MFA_ENCRYPTION_KEYS", settings.encryption_keys),
        )
        if not value
    ]
    if settings.env is Environment.PRODUCTION:
        _refuse_dev_keys_in_production(settings)
    if not missing:
        return settings
    if settings.env is Environment.PRODUCTION:
        raise ConfigurationError(
            f"{' and '.join(missing)} must be set in production; generated development keys "
            "are refused there."
        )
    update: dict[str, object] = {}
    if not settings.api_keys:
        key = _read_or_create(
            dev_api_key_path(settings), f"{DEV_KEY_PREFIX}{secrets.token_urlsafe(24)}"
        )
        update["api_keys"] = [f"{DEV_APPLICATION}:{key}"]
    if not settings.encryption_keys:
        update["encryption_keys"] = [
            _read_or_create(settings.data_dir / "dev-encryption-key", _new_encryption_key())
        ]
    return settings.model_copy(update=update)


def _refuse_dev_keys_in_production(settings: Settings) -> None:
    """Generated development keys copied into a production configuration are refused too.

    They sit in a file of the data directory (readable by whoever had the development machine)
    and the API key was printed to a terminal: neither is a secret fit for production. The
    message names the variable, never the key.
    """
    dev_api = _read_if_present(dev_api_key_path(settings))
    dev_encryption = _read_if_present(settings.data_dir / "dev-encryption-key")
    for entry in settings.api_keys:
        app, _, key = entry.partition(":")
        copied = dev_api is not None and hmac.compare_digest(key.encode(), dev_api.encode())
        if app == DEV_APPLICATION or key.startswith(DEV_KEY_PREFIX) or copied:
            raise ConfigurationError(
                "MFA_API_KEYS holds a generated development key; production needs its own keys."
            )
    if dev_encryption is not None and any(
        hmac.compare_digest(k.strip().encode(), dev_encryption.encode())
        for k in settings.encryption_keys
    ):
        raise ConfigurationError(
            "MFA_ENCRYPTION_KEYS holds the generated development key; production needs its own."
        )


def _read_if_present(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def dev_api_key_path(settings: Settings) -> Path:
    """Where the generated development API key is kept (and read again by later runs)."""
    return settings.data_dir / "dev-api-key"


def dev_api_key(settings: Settings) -> str | None:
    """The generated development API key, if one is in use (printed by `up`)."""
    for entry in settings.api_keys:
        app, _, key = entry.partition(":")
        if app == DEV_APPLICATION:
            return key
    return None
