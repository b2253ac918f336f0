"""One-time codes: their accepted shape, their generation and how they are kept (hashed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from mfa_pipeline.domain.errors import InvalidCodeError

CODE_DIGITS = 6
_SEPARATORS = (" ", "-")


def normalize_code(raw: object) -> str:
    """Return the 6 ASCII digits of a typed code, or raise `InvalidCodeError`.

    Spaces and dashes are allowed between digits (`123 456`, `123-456`); anything else,
    including non-ASCII digits such as Arabic-Indic or full-width ones, is refused here so
    that it never counts as an attempt.
    """
    if not isinstance(raw, str):
        raise InvalidCodeError("The code must be a string of 6 digits.")
    compact = raw.strip()
    for separator in _SEPARATORS:
        compact = compact.replace(separator, "")
    if len(compact) != CODE_DIGITS or not all("0" <= c <= "9" for c in compact):
        raise InvalidCodeError("The code must be 6 digits (spaces or a dash are allowed).")
    return compact


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
