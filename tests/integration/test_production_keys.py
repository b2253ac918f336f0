"""Production refuses generated development keys: missing ones, and copies of them."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.adapters.crypto import generate_key
from mfa_pipeline.config import ConfigurationError, Settings, dev_api_key, with_dev_keys

if TYPE_CHECKING:
    from pathlib import Path

GOOD_API_KEYS = ["manage:" + "m" * 32]


def dev_keys(data_dir: Path) -> tuple[str, str]:
    """Generate the development keys `up` would make in `data_dir`; return (api, encryption)."""
    dev = with_dev_keys(Settings(env="development", data_dir=data_dir))
    api_key = dev_api_key(dev)
    assert api_key is not None
    return api_key, dev.encryption_keys[0]


def run_up(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`mfa-pipeline up` in production; it must refuse before it starts anything."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("MFA_")
    } | {
        "MFA_ENV": "production",
        "MFA_DATA_DIR": str(data_dir),
        "MFA_REDIS_URL": "redis://127.0.0.1:9/0",  # never reached: nothing may start
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "mfa_pipeline.cli", "up", "--port", "9"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_up_in_production_refuses_a_copied_development_api_key(tmp_path: Path) -> None:
    api_key, _ = dev_keys(tmp_path)
    done = run_up(tmp_path, MFA_API_KEYS=f"manage:{api_key}", MFA_ENCRYPTION_KEYS=generate_key())
    assert done.returncode != 0
    assert "MFA_API_KEYS holds a generated development key" in done.stderr
    assert api_key not in done.stdout + done.stderr


def test_up_in_production_refuses_the_copied_development_encryption_key(tmp_path: Path) -> None:
    _, encryption_key = dev_keys(tmp_path)
    done = run_up(
        tmp_path,
        MFA_API_KEYS=",".join(GOOD_API_KEYS),
        MFA_ENCRYPTION_KEYS=f"{generate_key()},{encryption_key}",
    )
    assert done.returncode != 0
    assert "MFA_ENCRYPTION_KEYS holds the generated development key" in done.stderr
    assert encryption_key not in done.stdout + done.stderr


def test_up_in_production_refuses_to_generate_keys(tmp_path: Path) -> None:
    done = run_up(tmp_path)
    assert done.returncode != 0
    assert "must be set in production" in done.stderr
    assert not (tmp_path / "dev-api-key").exists()
    assert not (tmp_path / "dev-encryption-key").exists()


@pytest.mark.parametrize("entry", ["dev:" + "x" * 24, "manage:dev_" + "x" * 24])
def test_a_key_shaped_like_a_development_key_is_refused_in_production(
    tmp_path: Path, entry: str
) -> None:
    settings = Settings(
        env="production", data_dir=tmp_path, api_keys=[entry], encryption_keys=[generate_key()]
    )
    with pytest.raises(ConfigurationError, match="MFA_API_KEYS"):
        with_dev_keys(settings)


def test_production_with_its_own_keys_starts_and_development_still_generates(
    tmp_path: Path,
) -> None:
    dev_keys(tmp_path)  # development files exist, but production does not use them
    own = Settings(
        env="production",
        data_dir=tmp_path,
        api_keys=GOOD_API_KEYS,
        encryption_keys=[generate_key()],
    )
    assert with_dev_keys(own) == own
