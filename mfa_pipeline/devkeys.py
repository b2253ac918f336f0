"""Development keys: generated once into the data directory so `up` needs no configuration.

Outside development they are refused: production must bring its own keys.
"""

from __future__ import annotations

import hmac
import os
import secrets
from typing import TYPE_CHECKING

from mfa_pipeline.adapters.crypto import generate_key
from mfa_pipeline.config import Environment, Settings

if TYPE_CHECKING:
    from pathlib import Path

DEV_APPLICATION = "dev"
DEV_KEY_PREFIX = "dev_"


class ConfigurationError(RuntimeError):
    """The settings cannot run safely; the message says which variable to set."""


def _read_or_create(path: Path, make: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(make + "\n")
    return make


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
            settings.data_dir / "dev-api-key", f"{DEV_KEY_PREFIX}{secrets.token_urlsafe(24)}"
        )
        update["api_keys"] = [f"{DEV_APPLICATION}:{key}"]
    if not settings.encryption_keys:
        update["encryption_keys"] = [
            _read_or_create(settings.data_dir / "dev-encryption-key", generate_key())
        ]
    return settings.model_copy(update=update)


def _refuse_dev_keys_in_production(settings: Settings) -> None:
    """Generated development keys copied into a production configuration are refused too.

    They sit in a file of the data directory (readable by whoever had the development machine)
    and the API key was printed to a terminal: neither is a secret fit for production. The
    message names the variable, never the key.
    """
    dev_api = _read_if_present(settings.data_dir / "dev-api-key")
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


def dev_api_key(settings: Settings) -> str | None:
    """The generated development API key, if one is in use (printed by `up`)."""
    for entry in settings.api_keys:
        app, _, key = entry.partition(":")
        if app == DEV_APPLICATION:
            return key
    return None
