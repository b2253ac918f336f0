"""What the HTTP layer itself reads of the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mfa_pipeline.config import Settings


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """What the HTTP layer itself needs of the settings."""

    # API key -> application name.
    api_keys: dict[str, str]
    # Where the long-poll listens for challenge changes (the store's Redis).
    redis_url: str
    key_prefix: str
    long_poll_max_seconds: float
    max_body_bytes: int
    # The small pool backup-code hashing runs on, and how many may wait for it.
    backup_code_workers: int
    backup_code_queue: int

    @classmethod
    def from_settings(cls, settings: Settings, api_keys: dict[str, str]) -> ApiConfig:
        return cls(
            api_keys=api_keys,
            redis_url=settings.redis_url or "",
            key_prefix=settings.key_prefix,
            long_poll_max_seconds=settings.long_poll_max_seconds,
            max_body_bytes=settings.max_body_bytes,
            backup_code_workers=settings.backup_code_workers,
            backup_code_queue=settings.backup_code_queue,
        )
