"""Secrets at rest: AES-256-GCM with a key list, so keys can rotate without downtime.

Each ciphertext names the key that made it and is bound (associated data) to the row it
belongs to: copied into another user's or factor's row, it no longer decrypts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mfa_pipeline.ports import SecretBox, SecretDecryptError

KEY_BYTES = 32
NONCE_BYTES = 12  # 96-bit nonces: the GCM recommendation (NIST SP 800-38D §8.2)
VERSION = "v1"


def generate_key() -> str:
    """A fresh key in the form `MFA_ENCRYPTION_KEYS` takes."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def _decode_key(text: str) -> bytes:
    """Strict urlsafe base64 (padding optional): stray characters are refused, not skipped."""
    compact = text.strip()
    if not compact.isascii():
        return b""
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), altchars="-_", validate=True)
    except (binascii.Error, ValueError):
        return b""


def parse_keys(texts: list[str]) -> list[bytes]:
    """Decode `MFA_ENCRYPTION_KEYS` entries; a bad entry is named by position, never echoed."""
    if not texts:
        raise ValueError("MFA_ENCRYPTION_KEYS is empty")
    keys = []
    for position, text in enumerate(texts, start=1):
        key = _decode_key(text)
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"MFA_ENCRYPTION_KEYS entry {position} is not urlsafe base64 of {KEY_BYTES} bytes"
            )
        keys.append(key)
    return keys


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class AesGcmSecretBox(SecretBox):
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._keys = [(key_id(k), AESGCM(k)) for k in keys]
        self._first_key = keys[0]
        self._by_id = dict(self._keys)
        self._code_keys = [
            HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"mfa-pipeline code hash"
            ).derive(k)
            for k in keys
        ]

    @property
    def primary_key_id(self) -> str:
        return self._keys[0][0]

    def encrypt(self, plaintext: str, *, context: str) -> str:
        kid, aead = self._keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = aead.encrypt(nonce, plaintext.encode(), context.encode())
        blob = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{VERSION}.{kid}.{blob}"

    def decrypt(self, ciphertext: str, *, context: str) -> str:
        version, _, rest = ciphertext.partition(".")
        kid, _, blob = rest.partition(".")
        if version != VERSION or not blob:
            raise SecretDecryptError(f"secret is not a {VERSION} ciphertext")
        aead = self._by_id.get(kid)
        if aead is None:
            raise SecretDecryptError("secret was encrypted with a key that is not configured")
        try:
            raw = base64.urlsafe_b64decode(blob.encode("ascii"))
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SecretDecryptError("secret does not decrypt for this record") from exc

    def reencrypt(self, ciphertext: str, *, context: str) -> str | None:
        """The ciphertext under the first key, or None when it already is (key rotation)."""
        _, _, rest = ciphertext.partition(".")
        if rest.partition(".")[0] == self.primary_key_id:
            return None
        return self.encrypt(self.decrypt(ciphertext, context=context), context=context)

    def derive_key(self, label: bytes) -> bytes:
        """A key of its own for `label` (HKDF of the first encryption key), e.g. to key hashes.

        Derived from the first key only: after a rotation, what it keyed is keyed anew.
        """
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
            self._first_key
        )

    def code_keys(self) -> list[bytes]:
        return list(self._code_keys)
