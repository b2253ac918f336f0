"""Secrets, codes and phone numbers never reach a log line, whoever logs them and however."""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from mfa_pipeline.logs import REDACTED, configure_logging, get_logger, redact_secrets

if TYPE_CHECKING:
    from collections.abc import Iterator

CODE = "493817"
TOTP_SECRET = "JBSWY3DPEHPK3PXP"
API_KEY = "mfa_live_9f8e7d6c5b4a3210"
BEARER = "eyJhbGciOiJIUzI1NiJ9.payload.sig"
TWILIO_TOKEN = "tw_auth_0123abcd4567ef"
PASSWORD = "hunter2-correct-horse"
PHONE = "+14155550167"
PHONE_DIGITS = "14155550167"
MASKED_PHONE = "+*********67"

SECRETS = (CODE, TOTP_SECRET, API_KEY, BEARER, TWILIO_TOKEN, PASSWORD, PHONE_DIGITS, "4155550")
VISIBLE = ("ch_7Hq2xK", "u_1001", "sms", "sent")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back for the other tests."""
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    twilio = logging.getLogger("twilio.http_client")
    twilio_level = twilio.level
    yield
    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    twilio.setLevel(twilio_level)
    if was_configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()


def configured_output(fmt: str, env: str = "development") -> io.StringIO:
    buffer = io.StringIO()
    configure_logging(level="INFO", fmt=fmt, env=env, stream=buffer)
    return buffer


def fail(message: str) -> NoReturn:
    raise RuntimeError(message)


def log_everything_wrong() -> None:
    """Every mistake at once: secrets as values, in nested data, in text, from stdlib loggers."""
    structlog.contextvars.bind_contextvars(task_id="task-42", request_id="req-42")
    log = get_logger("mfa_pipeline.services.delivery")
    log.info(
        "sms_sent",
        challenge_id="ch_7Hq2xK",
        user_id="u_1001",
        factor="sms",
        outcome="sent",
        code=CODE,
        otp=int(CODE),
        totp_secret=TOTP_SECRET,
        api_key=API_KEY,
        Authorization=f"Bearer {BEARER}",
        twilio_auth_token=TWILIO_TOKEN,
        password=PASSWORD,
        phone=PHONE,
        to=PHONE_DIGITS,
        sms_body=f"Your sign-in code is {CODE}. It expires in 10 minutes.",
        request={"headers": {"authorization": f"Bearer {BEARER}"}, "params": [PHONE]},
    )
    log.warning(
        f"sending {CODE} to {PHONE} with token={TWILIO_TOKEN}",  # noqa: G004 - the mistake under test
        challenge_id="ch_7Hq2xK",
    )
    logging.getLogger("celery").info(
        "Task %s received; header Authorization: Bearer %s, to %s",
        "deliver_sms",
        BEARER,
        PHONE,
    )
    try:
        fail(f"provider rejected {PHONE} code {CODE} api_key={API_KEY}")
    except RuntimeError:
        log.exception("sms_failed", challenge_id="ch_7Hq2xK", outcome="failed")
        logging.getLogger("twilio.http_client").exception("twilio request failed")


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    for visible in VISIBLE:
        assert visible in text
    assert MASKED_PHONE in text
    assert REDACTED in text


def test_captured_events_carry_no_secrets_but_keep_identifiers(restore_logging: None) -> None:
    # capture_logs keeps the configured level filter, and a test run before this one in the
    # same process may have left WARNING (seen under pytest-xdist): the info event must count.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    with capture_logs(processors=[redact_secrets]) as entries:
        log_everything_wrong()
    structlog.contextvars.clear_contextvars()

    text = json.dumps(entries, default=str)
    assert_clean(text)
    sent = entries[0]
    assert sent["challenge_id"] == "ch_7Hq2xK"
    assert sent["user_id"] == "u_1001"
    assert sent["factor"] == "sms"
    assert sent["outcome"] == "sent"
    assert sent["code"] == REDACTED
    assert sent["otp"] == REDACTED
    assert sent["api_key"] == REDACTED
    assert sent["Authorization"] == REDACTED
    assert sent["phone"] == MASKED_PHONE
    assert sent["to"].endswith("67")
    assert sent["request"]["headers"]["authorization"] == REDACTED
    assert sent["request"]["params"] == [MASKED_PHONE]


def test_json_lines_through_the_configured_chain_are_redacted(restore_logging: None) -> None:
    output = configured_output("json")

    log_everything_wrong()

    text = output.getvalue()
    assert_clean(text)
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    by_logger = {(line["logger"], line["event"]): line for line in lines}
    sent = by_logger["mfa_pipeline.services.delivery", "sms_sent"]
    assert sent["challenge_id"] == "ch_7Hq2xK"
    assert sent["user_id"] == "u_1001"
    assert sent["phone"] == MASKED_PHONE
    assert sent["sms_body"] == "Your sign-in code is ******. It expires in 10 minutes."
    celery = next(line for line in lines if line["logger"] == "celery")
    assert celery["task_id"] == "task-42"
    assert f"Authorization: {REDACTED}" in celery["event"]
    assert MASKED_PHONE in celery["event"]
    failed = by_logger["mfa_pipeline.services.delivery", "sms_failed"]
    assert "RuntimeError" in failed["exception"]
    assert all(line["task_id"] == "task-42" for line in lines)


def test_console_rendering_through_the_configured_chain_is_redacted(restore_logging: None) -> None:
    output = configured_output("console")

    log_everything_wrong()

    text = output.getvalue()
    assert_clean(text)
    assert "\x1b[" not in text  # not a terminal: no colour codes
    assert "task_id=task-42" in text
    assert "challenge_id=ch_7Hq2xK" in text
    assert "[celery]" in text
    assert "Traceback (most recent call last)" in text


def test_stdlib_records_get_the_same_fields_as_structlog_events(restore_logging: None) -> None:
    output = configured_output("json")
    structlog.contextvars.bind_contextvars(task_id="task-7")

    logging.getLogger("celery").info("worker ready for %s", PHONE)

    line = json.loads(output.getvalue())
    assert line["event"] == f"worker ready for {MASKED_PHONE}"
    assert line["logger"] == "celery"
    assert line["level"] == "info"
    assert line["task_id"] == "task-7"


def test_timestamps_are_iso_8601_utc(restore_logging: None) -> None:
    output = configured_output("json")

    get_logger("mfa_pipeline.test").info("tick")

    timestamp = json.loads(output.getvalue())["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", timestamp)


@pytest.mark.parametrize(
    ("fmt", "env", "is_json"),
    [
        ("auto", "production", True),
        ("auto", "development", False),
        ("auto", "test", False),
        ("json", "development", True),
        ("console", "production", False),
    ],
)
def test_auto_format_is_json_in_production_only(
    restore_logging: None, fmt: str, env: str, is_json: bool
) -> None:
    output = configured_output(fmt, env)

    get_logger("mfa_pipeline.test").info("tick", challenge_id="ch_1")

    assert output.getvalue().startswith("{") is is_json


def test_configuring_twice_does_not_duplicate_lines(restore_logging: None) -> None:
    configured_output("json")
    output = configured_output("json")

    get_logger("mfa_pipeline.test").info("once")

    assert len(output.getvalue().splitlines()) == 1


def test_events_below_the_level_are_dropped(restore_logging: None) -> None:
    output = io.StringIO()
    configure_logging(level="warning", fmt="json", stream=output)

    get_logger("mfa_pipeline.test").info("quiet")
    logging.getLogger("celery").info("quiet too")
    get_logger("mfa_pipeline.test").warning("loud")

    assert [json.loads(line)["event"] for line in output.getvalue().splitlines()] == ["loud"]


def test_unknown_level_or_format_is_refused(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="level"):
        configure_logging(level="chatty", stream=io.StringIO())
    with pytest.raises(ValueError, match="format"):
        configure_logging(fmt="xml", stream=io.StringIO())


def redact(**event: object) -> dict[str, object]:
    return dict(redact_secrets(None, "info", dict(event)))


@pytest.mark.parametrize(
    "key",
    [
        "code",
        "otp",
        "secret",
        "token",
        "password",
        "passcode",
        "api_key",
        "apiKey",
        "APIKEY",
        "authorization",
        "Authorization",
        "auth",
        "signature",
        "X-Twilio-Signature",
        "key",
        "cookie",
        "backup_codes",
        "pin",
        "trusted_token",
        "push_token",
        "twilio_auth_token",
        "encryption_keys",
        "otpauth_uri",
        "sms_code",
        "SessionCookie",
    ],
)
def test_secret_sounding_keys_are_redacted(key: str) -> None:
    assert redact(**{key: "s3cr3t-value"})[key] == REDACTED


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("error_code", "invalid_code"),
        ("status_code", 429),
        ("http_status", 503),
        ("code_length", 6),
        ("key_id", "k2"),
        ("factor", "totp"),
        ("challenge_id", "ch_1"),
        ("user_id", "u_1"),
        ("factor_id", "f_1"),
        ("device_id", "d_1"),
        ("reason", "user_denied"),
        ("outcome", "verified"),
        ("provider_error_code", "30003"),
        ("backup_codes_remaining", 9),
        ("attempts_remaining", 4),
    ],
)
def test_safe_keys_are_kept(key: str, value: object) -> None:
    assert redact(**{key: value})[key] == value


def test_flags_and_absent_values_under_secret_keys_stay_readable() -> None:
    assert redact(has_token=True, code=None) == {"has_token": True, "code": None}


@pytest.mark.parametrize(
    ("given", "masked"),
    [
        ("+14155550167", "+*********67"),
        ("+1 (415) 555-0167", "+*********67"),
        ("+44 7911 123456", "+**********56"),
        ("%2B14155550167", "%2B*********67"),
    ],
)
def test_phone_numbers_anywhere_keep_only_their_last_two_digits(given: str, masked: str) -> None:
    event = redact(event=f"texting {given} now", detail={"note": f"to {given}"})
    assert event["event"] == f"texting {masked} now"
    assert event["detail"] == {"note": f"to {masked}"}


@pytest.mark.parametrize("key", ["phone", "to", "msisdn", "number", "phone_e164", "To"])
def test_phone_keys_are_masked_even_without_a_plus(key: str) -> None:
    assert redact(**{key: "4155550167"})[key] == "********67"
    assert redact(**{key: 4155550167})[key] == "********67"


def test_two_digit_values_under_number_keys_are_unchanged() -> None:
    event = redact(number_match="42", number_choices=["42", "17", "93"])
    assert event == {"number_match": "42", "number_choices": ["42", "17", "93"]}


@pytest.mark.parametrize("key", ["body", "text", "sms_body", "message", "Body"])
@pytest.mark.parametrize("code", ["493817", "493 817", "493-817", "G-493817"])
def test_codes_in_message_bodies_are_scrubbed(key: str, code: str) -> None:
    event = redact(**{key: f"Your code is {code}. Do not share it."})
    assert "493" not in str(event[key])
    assert "817" not in str(event[key])
    assert "Your code is" in str(event[key])


def test_a_code_passed_as_a_number_to_a_message_key_is_scrubbed() -> None:
    assert redact(sms_body=int(CODE)) == {"sms_body": "******"}


def test_codes_in_event_text_are_scrubbed_but_durations_and_paths_are_not() -> None:
    event = redact(event="code 493817 rejected after 0.123456s on /v1/users/123456")
    assert event["event"] == "code ****** rejected after 0.123456s on /v1/users/123456"


def test_exception_text_is_scrubbed() -> None:
    try:
        fail(f"Authorization: Bearer {BEARER} for {PHONE} code {CODE}")
    except RuntimeError as exc:
        event = redact(event="failed", exc_info=exc)
    text = str(event["exception"])
    assert "RuntimeError" in text
    assert BEARER not in text
    assert CODE not in text
    assert PHONE_DIGITS not in text
    assert MASKED_PHONE in text


@pytest.mark.parametrize(
    "text",
    [
        f"token={TWILIO_TOKEN}",
        f"?api_key={API_KEY}&page=2",
        f"{{'password': '{PASSWORD}'}}",
        f'{{"secret": "{TOTP_SECRET}"}}',
        f"X-Twilio-Signature : {TWILIO_TOKEN}",
        f"Authorization: Bearer {BEARER}",
        f"otpauth://totp/mfa:u?secret={TOTP_SECRET}&issuer=mfa",
        f"postgresql+psycopg://mfa:{PASSWORD}@db:5432/mfa",
        f"verify code={CODE} for ch_1",
        f"{{'sms_code': '{CODE}'}}",
    ],
)
def test_secrets_inside_strings_are_redacted(text: str) -> None:
    value = str(redact(note=text)["note"])
    assert REDACTED in value
    for secret in (TWILIO_TOKEN, API_KEY, PASSWORD, TOTP_SECRET, BEARER, CODE):
        assert secret not in value


def test_harmless_text_is_left_alone() -> None:
    text = "Response Status Code: 200; exit code: 1; shipping: 3 items; totp_step=58; ch_1 pending"
    assert redact(note=text)["note"] == text


def test_nested_dicts_and_lists_are_redacted() -> None:
    event = redact(
        payload={
            "users": [{"user_id": "u_1", "phone": PHONE, "backup_codes": ["ab12-cd34"]}],
            "headers": ({"Cookie": "session=abc"},),
        }
    )
    assert event["payload"] == {
        "users": [{"user_id": "u_1", "phone": MASKED_PHONE, "backup_codes": REDACTED}],
        "headers": ({"Cookie": REDACTED},),
    }


@dataclass
class LeakyFactor:
    factor_id: str
    phone_e164: str
    secret: str


def test_objects_are_rendered_through_their_scrubbed_repr() -> None:
    value = str(redact(factor_obj=LeakyFactor("f_1", PHONE, TOTP_SECRET))["factor_obj"])
    assert "f_1" in value
    assert TOTP_SECRET not in value
    assert PHONE_DIGITS not in value


def test_cyclic_values_do_not_loop_forever() -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    assert "[truncated]" in json.dumps(redact(data=cyclic))


@settings(database=None)  # nothing to remember between runs: no .hypothesis/ directory
@given(
    prefix=st.text(alphabet="abc xyz:", max_size=10),
    digits=st.text(alphabet="0123456789", min_size=7, max_size=15),
    key=st.sampled_from(["event", "note", "detail", "to"]),
)
def test_no_e164_number_survives_in_any_string(prefix: str, digits: str, key: str) -> None:
    value = str(redact(**{key: f"{prefix} +{digits} end"})[key])
    assert f"+{digits}" not in value
    assert value.count("*") >= len(digits) - 2
    assert digits[-2:] in value
