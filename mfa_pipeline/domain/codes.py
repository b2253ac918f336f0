"""One-time codes: their accepted shape, their generation and how they are kept (hashed)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from mfa_pipeline.domain.errors import InvalidCodeError

CODE_DIGITS = 6
# The contract's three forms only: `123456`, `123 456`, `123-456` (ASCII digits, one separator
# in the middle). `1-2-3-4-5-6` or `-123456` are typing accidents or probes, never codes.
_CODE_FORM = re.compile(r"([0-9]{3})[ -]?([0-9]{3})", re.ASCII)
MALFORMED_CODE_MESSAGE = "The code must be 6 digits, with at most one space or dash in the middle."


def normalize_code(raw: object) -> str:
    """Return the 6 ASCII digits of a typed code, or raise `InvalidCodeError`.

    One space or one dash is allowed in the middle (`123 456`, `123-456`), and surrounding
    whitespace is ignored; anything else, including non-ASCII digits such as Arabic-Indic or
    full-width ones and other separator placements, is refused here so that it never counts as
    an attempt.
    """
    if not isinstance(raw, str):
        raise InvalidCodeError(MALFORMED_CODE_MESSAGE)
    match = _CODE_FORM.fullmatch(raw.strip())
    if match is None:
        raise InvalidCodeError(MALFORMED_CODE_MESSAGE)
    return match.group(1) + match.group(2)


def generate_code() -> str:
    """A uniformly random 6-digit code from the OS CSPRNG."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_digest(key: bytes, challenge_id: str, seq: int, code: str) -> str:
    """Keyed hash of a code, bound to its challenge and send sequence.

    A bare hash of 6 digits falls to a million guesses; keying it with a server secret means a
    copy of the challenge store alone reveals nothing. Binding the challenge id and sequence
    makes a code of one challenge (or of an earlier send) useless for another.
    """
    message = f"{challenge_id}:{seq}:{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
