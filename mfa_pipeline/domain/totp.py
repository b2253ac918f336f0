"""TOTP checks (RFC 6238) with replay refusal and clock-skew diagnosis."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from enum import StrEnum

import pyotp
from pyotp.utils import strings_equal

# RFC 6238 §4: SHA1, 30 s steps, 6 digits: what every authenticator app supports.
PERIOD_SECONDS = 30
DIGITS = 6
# RFC 6238 §5.2 recommends at most one step of delay either way.
ACCEPT_WINDOW = 1
# Farther matches are refused but reported so the user can be told to fix the device clock.
SKEW_DIAGNOSIS_WINDOW = 10
# RFC 4226 §4 R6 asks for at least 128 bits; 160 matches the SHA1 block recommendation.
SECRET_BYTES = 20


class TotpOutcome(StrEnum):
    ACCEPTED = "accepted"
    REPLAYED = "replayed"
    CLOCK_SKEW = "clock_skew"
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class TotpMatch:
    outcome: TotpOutcome
    step: int | None = None
    skew_steps: int | None = None


def generate_secret() -> str:
    """A base32 secret of 160 random bits, the form authenticator apps accept."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def current_step(now: float) -> int:
    return int(now // PERIOD_SECONDS)


def check_totp(secret: str, code: str, *, now: float, last_step: int | None) -> TotpMatch:
    """Match `code` against the steps around `now`.

    Accepted only within ±1 step and only for a step after `last_step` (RFC 6238 §5.2: a
    code is single use). Every comparison is constant time.
    """
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_SECONDS)
    step_now = current_step(now)
    accepted: int | None = None
    replayed = False
    for offset in range(-ACCEPT_WINDOW, ACCEPT_WINDOW + 1):
        step = step_now + offset
        if strings_equal(totp.generate_otp(step), code):
            if last_step is not None and step <= last_step:
                replayed = True
            else:
                accepted = step
    if accepted is not None:
        return TotpMatch(TotpOutcome.ACCEPTED, step=accepted)
    if replayed:
        return TotpMatch(TotpOutcome.REPLAYED)
    for distance in range(ACCEPT_WINDOW + 1, SKEW_DIAGNOSIS_WINDOW + 1):
        for offset in (-distance, distance):
            if strings_equal(totp.generate_otp(step_now + offset), code):
                return TotpMatch(TotpOutcome.CLOCK_SKEW, skew_steps=offset)
    return TotpMatch(TotpOutcome.MISMATCH)
