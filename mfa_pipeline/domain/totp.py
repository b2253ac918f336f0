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
# How long an accepted step is remembered to refuse its code again (RFC 6238 §5.2). A step's
# code is accepted for (2 x ACCEPT_WINDOW + 1) steps, 90 s; the rest is room for the clocks of
# several API hosts disagreeing. Past it, the step's code is refused as out of the window.
STEP_CLAIM_SECONDS = 600


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


def check_totp(secret: str, code: str, *, now: float) -> TotpMatch:
    """Match `code` against the steps around `now`: accepted within ±1 step.

    Accepted is not yet used: the caller claims the step in the shared store, which refuses
    a step not above the last one claimed for the factor (RFC 6238 §5.2: a code is single
    use). Every comparison is constant time.
    """
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_SECONDS)
    step_now = current_step(now)
    accepted: int | None = None
    for offset in range(-ACCEPT_WINDOW, ACCEPT_WINDOW + 1):
        step = step_now + offset
        if strings_equal(totp.generate_otp(step), code):
            accepted = step
    if accepted is not None:
        return TotpMatch(TotpOutcome.ACCEPTED, step=accepted)
    for distance in range(ACCEPT_WINDOW + 1, SKEW_DIAGNOSIS_WINDOW + 1):
        for offset in (-distance, distance):
            if strings_equal(totp.generate_otp(step_now + offset), code):
                return TotpMatch(TotpOutcome.CLOCK_SKEW, skew_steps=offset)
    return TotpMatch(TotpOutcome.MISMATCH)
