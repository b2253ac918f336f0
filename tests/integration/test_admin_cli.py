"""`mfa-pipeline db upgrade` and `mfa-pipeline admin ...` through click, on real databases."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pyotp
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from mfa_pipeline.adapters.crypto import SecretDecryptError, generate_key
from mfa_pipeline.adapters.sql_migrations import head_revision
from mfa_pipeline.bootstrap import Container, bootstrap
from mfa_pipeline.cli import main
from mfa_pipeline.domain.challenges import RequestContext, RequestedFactor
from tests.doubles.publisher import RecordingEventPublisher

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from click.testing import Result

    from mfa_pipeline.config import Settings
    from tests.doubles.clock import FrozenClock
    from tests.fakes.fake_twilio import FakeTwilio

KEY_A = generate_key()
KEY_B = generate_key()
PHONE = "+12015550123"


def run(args: list[str], **env: str) -> Result:
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def cli_env(settings: Settings, keys: str) -> dict[str, str]:
    return {
        "MFA_DATABASE_URL": settings.effective_database_url,
        "MFA_DATA_DIR": str(settings.data_dir),
        "MFA_ENCRYPTION_KEYS": keys,
        "MFA_LOG_FORMAT": "console",
        "MFA_LOG_LEVEL": "WARNING",
    }


# --- migrations ------------------------------------------------------------------------------


def test_db_upgrade_migrates_an_empty_database_to_the_head(
    database_url: str, tmp_path: Path
) -> None:
    result = run(
        ["db", "upgrade"],
        MFA_DATABASE_URL=database_url,
        MFA_DATA_DIR=str(tmp_path / "data"),
        MFA_LOG_LEVEL="WARNING",
    )
    assert "up to date" in result.output
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            version = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert version == head_revision()
    assert {"users", "factors", "audit_events", "firm_policies", "trusted_sessions"} <= tables
    # Running it again is harmless.
    run(["db", "upgrade"], MFA_DATABASE_URL=database_url, MFA_DATA_DIR=str(tmp_path / "data"))


# --- users -----------------------------------------------------------------------------------


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": [KEY_A]}


@pytest.fixture
def quiet(settings: Settings, clock: FrozenClock) -> Iterator[Container]:
    """The service with key A, its events recorded rather than queued (no worker here)."""
    built = bootstrap(settings, clock=clock, publisher=RecordingEventPublisher())
    yield built
    built.close()


def enroll_both(c: Container, fake: FakeTwilio, clock: FrozenClock, user_id: str) -> pyotp.TOTP:
    """A user with an active TOTP and an active SMS factor (the SMS code read off the fake)."""
    c.services.enrollment.put_user(user_id=user_id, firm_id="firm-ops")
    totp_enrollment = c.services.enrollment.enroll_totp(user_id=user_id)
    totp = pyotp.TOTP(totp_enrollment.secret)
    c.services.enrollment.activate(
        user_id=user_id,
        factor_id=totp_enrollment.factor.factor_id,
        code=totp.at(clock.now()),
    )
    clock.advance(30)
    sms = c.services.enrollment.enroll_sms(user_id=user_id, phone=PHONE, region=None)
    c.services.sms_delivery.deliver(challenge_id=sms.challenge_id, seq=0)
    c.services.enrollment.activate(
        user_id=user_id, factor_id=sms.factor.factor_id, code=sms_code(fake, len(fake.messages))
    )
    return totp


def sms_code(fake: FakeTwilio, count: int) -> str:
    found = re.search(r"\b(\d{6})\b", fake.wait_for_messages(count)[count - 1]["Body"])
    assert found is not None
    return found.group(1)


def test_show_user_lists_factors_without_secrets_and_the_recent_events(
    quiet: Container, fake_twilio: FakeTwilio, clock: FrozenClock, settings: Settings
) -> None:
    totp = enroll_both(quiet, fake_twilio, clock, "u-show")
    quiet.services.backup_codes.generate(user_id="u-show")
    out = run(["admin", "show-user", "u-show"], **cli_env(settings, KEY_A)).output
    assert "totp" in out
    assert "*******23" in out
    assert "backup codes remaining: 10" in out
    assert "trusted sessions: 0" in out
    assert "factor_activated" in out
    assert PHONE not in out
    assert "2015550123" not in out
    assert totp.secret not in out


def test_reset_user_from_the_cli_is_audited_with_the_operator(
    quiet: Container, fake_twilio: FakeTwilio, clock: FrozenClock, settings: Settings
) -> None:
    enroll_both(quiet, fake_twilio, clock, "u-reset")
    out = run(
        ["admin", "reset-user", "u-reset", "--actor", "ops-jane"], **cli_env(settings, KEY_A)
    ).output
    assert "2 factor(s) removed" in out
    assert quiet.ports.factors.list_factors("u-reset") == []
    # The CLI runs on the system clock, the enrollment on the test's frozen one: found by name.
    reset = next(e for e in quiet.ports.audit_log.for_user("u-reset") if e.event == "mfa_reset")
    assert (reset.actor_id, reset.application) == ("ops-jane", "cli")


def test_reset_user_of_an_unknown_user_fails_with_a_message(settings: Settings) -> None:
    result = CliRunner().invoke(
        main, ["admin", "reset-user", "nobody", "--actor", "ops"], env=cli_env(settings, KEY_A)
    )
    assert result.exit_code != 0
    assert "No such user" in result.output


# --- key rotation ----------------------------------------------------------------------------


def test_rotated_secrets_still_verify_once_the_old_key_is_removed(
    quiet: Container,
    fake_twilio: FakeTwilio,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    totps = {f"u-rot-{n}": enroll_both(quiet, fake_twilio, clock, f"u-rot-{n}") for n in range(3)}

    first = run(
        ["admin", "rotate-keys", "--batch-size", "2"], **cli_env(settings, f"{KEY_B},{KEY_A}")
    )
    assert "re-encrypted 2" in first.output  # progress per batch
    assert "done: 6 secret row(s) re-encrypted, 0 already current" in first.output
    again = run(["admin", "rotate-keys"], **cli_env(settings, f"{KEY_B},{KEY_A}"))
    assert "done: 0 secret row(s) re-encrypted, 6 already current" in again.output

    only_b = bootstrap(
        settings.model_copy(update={"encryption_keys": [KEY_B]}),
        clock=clock,
        publisher=RecordingEventPublisher(),
    )
    try:
        for user_id, totp in totps.items():
            login = only_b.services.challenges.issue(
                user_id=user_id, factor=RequestedFactor.TOTP, code=totp.at(clock.now())
            )
            assert login.status.value == "verified"
            sms = only_b.services.challenges.issue(
                user_id=user_id, factor=RequestedFactor.SMS, context=RequestContext()
            )
            assert (
                only_b.services.sms_delivery.deliver(challenge_id=sms.challenge.challenge_id, seq=0)
                == "sent"
            )
            code = sms_code(fake_twilio, len(fake_twilio.messages))
            verified = only_b.services.challenges.verify(
                challenge_id=sms.challenge.challenge_id, code=code
            )
            assert verified.status.value == "verified"
        # Key A alone opens nothing any more: every secret moved to key B.
        factor = only_b.ports.factors.list_factors("u-rot-0")[0]
        with pytest.raises(SecretDecryptError):
            quiet.ports.secrets.decrypt(
                factor.secret_ciphertext or factor.phone_ciphertext or "",
                context=f"{factor.type.value}:u-rot-0:{factor.factor_id}",
            )
    finally:
        only_b.close()


def test_rotation_without_the_old_key_stops_with_advice(
    quiet: Container, fake_twilio: FakeTwilio, clock: FrozenClock, settings: Settings
) -> None:
    enroll_both(quiet, fake_twilio, clock, "u-lost")
    result = CliRunner().invoke(main, ["admin", "rotate-keys"], env=cli_env(settings, KEY_B))
    assert result.exit_code != 0
    assert "keep every old key" in result.output
