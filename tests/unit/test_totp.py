"""TOTP checks: RFC 6238 vectors, the accepted window, skew diagnosis and replay refusal."""

from __future__ import annotations

import base64
import re

import pyotp
import pytest

from mfa_pipeline.domain.totp import (
    PERIOD_SECONDS,
    TotpMatch,
    TotpOutcome,
    check_totp,
    current_step,
    generate_secret,
)

# RFC 6238 Appendix B: the SHA1 seed is the ASCII string "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode("ascii")
RFC_SHA1_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]

# A frozen "now" in the middle of a 30 s step, so that ±n steps are exactly ±n * 30 s.
NOW = 37_037_037 * PERIOD_SECONDS + 15.0
STEP = current_step(NOW)


def code_at(step: int, secret: str = RFC_SECRET) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


@pytest.mark.parametrize(("at", "expected"), RFC_SHA1_VECTORS)
def test_pyotp_reproduces_the_rfc_6238_sha1_vectors(at: int, expected: str) -> None:
    assert pyotp.TOTP(RFC_SECRET, digits=8, interval=30).at(at) == expected


@pytest.mark.parametrize(("at", "expected"), RFC_SHA1_VECTORS)
def test_the_last_six_digits_of_an_rfc_vector_are_accepted_at_its_time(
    at: int, expected: str
) -> None:
    match = check_totp(RFC_SECRET, expected[-6:], now=at)
    assert match == TotpMatch(TotpOutcome.ACCEPTED, step=at // 30)


def test_the_code_of_the_current_step_is_accepted() -> None:
    assert check_totp(RFC_SECRET, code_at(STEP), now=NOW) == TotpMatch(
        TotpOutcome.ACCEPTED, step=STEP
    )


@pytest.mark.parametrize("offset", [-1, 1])
def test_a_code_one_step_early_or_late_is_accepted(offset: int) -> None:
    match = check_totp(RFC_SECRET, code_at(STEP + offset), now=NOW)
    assert match == TotpMatch(TotpOutcome.ACCEPTED, step=STEP + offset)


@pytest.mark.parametrize("offset", [-2, 2, -10, 10])
def test_a_code_two_to_ten_steps_off_is_refused_as_clock_skew_with_its_sign(offset: int) -> None:
    match = check_totp(RFC_SECRET, code_at(STEP + offset), now=NOW)
    assert match == TotpMatch(TotpOutcome.CLOCK_SKEW, skew_steps=offset)


@pytest.mark.parametrize("offset", [-11, 11, -100, 100])
def test_a_code_more_than_ten_steps_off_is_a_plain_mismatch(offset: int) -> None:
    match = check_totp(RFC_SECRET, code_at(STEP + offset), now=NOW)
    assert match == TotpMatch(TotpOutcome.MISMATCH)


def test_a_code_of_no_nearby_step_is_a_mismatch() -> None:
    nearby = {code_at(STEP + offset) for offset in range(-10, 11)}
    unused = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in nearby)
    assert check_totp(RFC_SECRET, unused, now=NOW) == TotpMatch(TotpOutcome.MISMATCH)


def test_a_generated_secret_is_160_bits_in_base32() -> None:
    secret = generate_secret()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert len(base64.b32decode(secret)) * 8 == 160


def test_generated_secrets_differ() -> None:
    assert len({generate_secret() for _ in range(100)}) == 100


def test_a_generated_secret_works_with_an_authenticator() -> None:
    secret = generate_secret()
    code = pyotp.TOTP(secret).at(NOW)
    assert check_totp(secret, code, now=NOW).outcome is TotpOutcome.ACCEPTED
