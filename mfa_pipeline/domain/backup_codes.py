"""Backup codes: their alphabet and shape, their generation, and the keyed lookup tag.

A backup code is typed from paper: `xxxx-xxxx` in Crockford's base32 alphabet (lowercase),
which leaves out i, l, o and u so that no two symbols look alike; what a reader may still
confuse (`o` for `0`, `i` or `l` for `1`) is folded back when the code is typed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from typing import Any

from mfa_pipeline.domain.errors import FactorNotEnrolledError, InvalidCodeError, WrongCodeError

# Crockford base32: 32 symbols, none of them a look-alike of another.
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# Misreadings of paper codes, accepted as what the reader meant (Crockford's decoding rules).
_FOLDS = {"o": "0", "i": "1", "l": "1"}
GROUP = 4
LENGTH = 2 * GROUP
# 8 symbols of a 32-symbol alphabet: 8 * log2(32) = 40.0 bits per code. (A 31-symbol alphabet
# such as 23456789 + letters without i, l, o gives only 8 * 4.954 = 39.6 bits.) 40 bits behind
# a per-challenge attempt limit and per-user rate windows is far beyond online guessing, and
# each stored hash is argon2id, so a copied database does not give codes away either.
BITS_PER_CODE = LENGTH * math.log2(len(ALPHABET))
CODES_PER_SET = 10
# After a use leaves this many or fewer, the user is told to print a new set.
LOW_WATERMARK = 2
# Keyed lookup tags are 8 hex digits (32 bits): enough that a login checks one argon2 hash,
# not ten, and short enough to say nothing useful about the code.
LOOKUP_HEX_DIGITS = 8
_LOOKUP_KEY_LABEL = b"mfa-pipeline/backup-code-lookup/v1"
_SEPARATORS = (" ", "-")


class InvalidBackupCodeError(InvalidCodeError):
    """A backup code of the wrong shape: refused before it can count as an attempt."""


class BurnedBackupCodeError(WrongCodeError):
    """A backup code that was already used: refused, and it counts as an attempt."""

    def __init__(self, message: str, *, attempts_remaining: int = 0, **details: Any) -> None:
        super().__init__(message, attempts_remaining=attempts_remaining, reason="used", **details)


class NoBackupCodesError(FactorNotEnrolledError):
    """The user has no unused backup codes."""


def normalize_backup_code(raw: object) -> str:
    """Return the 8 symbols of a typed backup code, or raise `InvalidBackupCodeError`.

    Dashes and spaces are dropped, letters may be in any case, and o, i and l are read as
    0, 1 and 1. Anything else (non-ASCII characters included) is refused here.
    """
    message = "A backup code is 8 letters and digits, like abcd-2345."
    if not isinstance(raw, str):
        raise InvalidBackupCodeError(message)
    compact = raw.strip()
    for separator in _SEPARATORS:
        compact = compact.replace(separator, "")
    if not compact.isascii():
        raise InvalidBackupCodeError(message)
    compact = "".join(_FOLDS.get(c, c) for c in compact.lower())
    if len(compact) != LENGTH or any(c not in ALPHABET for c in compact):
        raise InvalidBackupCodeError(message)
    return compact


def format_backup_code(normalized: str) -> str:
    """`abcd2345` → `abcd-2345`, the shape printed for the user."""
    return f"{normalized[:GROUP]}-{normalized[GROUP:]}"


def generate_backup_codes(count: int = CODES_PER_SET) -> list[str]:
    """`count` distinct codes from the OS CSPRNG, normalised (print with `format_backup_code`)."""
    codes: list[str] = []
    while len(codes) < count:
        code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        if code not in codes:
            codes.append(code)
    return codes


def lookup_key(code_key: bytes) -> bytes:
    """A key for lookup tags, derived from a code-hashing key so the two are never reused."""
    return hmac.new(code_key, _LOOKUP_KEY_LABEL, hashlib.sha256).digest()


def lookup_tag(key: bytes, user_id: str, normalized: str) -> str:
    """A short keyed tag of a user's code: it picks the one stored hash worth checking."""
    digest = hmac.new(key, f"{user_id}:{normalized}".encode(), hashlib.sha256).hexdigest()
    return digest[:LOOKUP_HEX_DIGITS]
