"""Development keys: generated once into the data directory so `up` needs no configuration.

Outside development they are refused: production must bring its own keys.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

from mfa_pipeline.adapters.crypto import generate_key
from mfa_pipeline.config import Environment, Settings

if TYPE_CHECKING:
    from pathlib import Path

DEV_APPLICATION = "dev"


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
    if not missing:
        return settings
    if settings.env is Environment.PRODUCTION:
        raise ConfigurationError(
            f"{' and '.join(missing)} must be set in production; generated development keys "
            "are refused there."
        )
    update: dict[str, object] = {}
    if not settings.api_keys:
        key = _read_or_create(settings.data_dir / "dev-api-key", f"dev_{secrets.token_urlsafe(24)}")
        update["api_keys"] = [f"{DEV_APPLICATION}:{key}"]
    if not settings.encryption_keys:
        update["encryption_keys"] = [
            _read_or_create(settings.data_dir / "dev-encryption-key", generate_key())
        ]
    return settings.model_copy(update=update)


def dev_api_key(settings: Settings) -> str | None:
    """The generated development API key, if one is in use (printed by `up`)."""
    for entry in settings.api_keys:
        app, _, key = entry.partition(":")
        if app == DEV_APPLICATION:
            return key
    return None
