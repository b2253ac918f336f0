"""Secrets at rest: sealed, bound to their row, readable across a key rotation."""

from __future__ import annotations

import hashlib

import pytest

from mfa_pipeline.adapters.crypto import (
    AesGcmSecretBox,
    SecretDecryptError,
    generate_key,
    parse_keys,
)


def box(*keys: str) -> AesGcmSecretBox:
    return AesGcmSecretBox(parse_keys(list(keys)))


def test_a_secret_round_trips_and_never_appears_in_its_ciphertext() -> None:
    sealed = box(generate_key()).encrypt("JBSWY3DPEHPK3PXP", context="totp:alice:f1")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert sealed.startswith("v1.")


def test_the_same_secret_encrypts_differently_each_time() -> None:
    secrets_box = box(generate_key())
    assert secrets_box.encrypt("x", context="c") != secrets_box.encrypt("x", context="c")


def test_a_ciphertext_moved_to_another_row_does_not_decrypt() -> None:
    secrets_box = box(generate_key())
    sealed = secrets_box.encrypt("JBSWY3DPEHPK3PXP", context="totp:alice:f1")
    with pytest.raises(SecretDecryptError):
        secrets_box.decrypt(sealed, context="totp:mallory:f9")


def test_a_tampered_ciphertext_does_not_decrypt() -> None:
    secrets_box = box(generate_key())
    sealed = secrets_box.encrypt("secret", context="c")
    head, blob = sealed.rsplit(".", 1)
    flipped = blob[:-2] + ("A" if blob[-2] != "A" else "B") + blob[-1]
    with pytest.raises(SecretDecryptError):
        secrets_box.decrypt(f"{head}.{flipped}", context="c")


def test_after_rotation_old_secrets_decrypt_and_reencrypt_under_the_new_key() -> None:
    old, new = generate_key(), generate_key()
    sealed = box(old).encrypt("secret", context="c")
    rotated_box = box(new, old)
    assert rotated_box.decrypt(sealed, context="c") == "secret"
    moved = rotated_box.reencrypt(sealed, context="c")
    assert moved is not None
    assert rotated_box.reencrypt(moved, context="c") is None
    assert box(new).decrypt(moved, context="c") == "secret"


def test_a_secret_under_a_removed_key_fails_clearly() -> None:
    sealed = box(generate_key()).encrypt("secret", context="c")
    with pytest.raises(SecretDecryptError, match="not configured"):
        box(generate_key()).decrypt(sealed, context="c")


@pytest.mark.parametrize(
    "bad",
    [
        "short",
        "!!!not-base64!!!",
        generate_key()[:-8],
        "*" + generate_key(),  # a stray character is refused, not silently skipped
        "é" + generate_key()[1:],
    ],
    # Named, not shown: the keys are random, and parallel runs must collect the same ids.
    ids=["short", "not-base64", "truncated", "stray-character", "non-ascii"],
)
def test_a_malformed_key_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(ValueError, match="entry 2") as caught:
        parse_keys([generate_key(), bad])
    assert bad not in str(caught.value)


def test_code_keys_differ_from_the_encryption_keys_and_follow_their_order() -> None:
    first, second = generate_key(), generate_key()
    keys = box(first, second).code_keys()
    assert len(keys) == 2
    assert keys[0] not in parse_keys([first, second])
    assert box(first).code_keys()[0] == keys[0]


def test_a_key_without_its_padding_is_accepted() -> None:
    key = generate_key()
    assert parse_keys([key.rstrip("=")]) == parse_keys([key])


def test_an_empty_key_list_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_keys([])


@pytest.mark.parametrize("garbage", ["", "plain text", "v1.", "v2.abcd1234.AAAA", "v1.nokey"])
def test_something_that_is_no_ciphertext_fails_clearly(garbage: str) -> None:
    with pytest.raises(SecretDecryptError):
        box(generate_key()).decrypt(garbage, context="c")


def test_a_truncated_ciphertext_does_not_decrypt() -> None:
    secrets_box = box(generate_key())
    sealed = secrets_box.encrypt("secret", context="c")
    head, _ = sealed.rsplit(".", 1)
    with pytest.raises(SecretDecryptError, match="does not decrypt"):
        secrets_box.decrypt(f"{head}.AAAA", context="c")


def test_a_decrypt_error_never_shows_the_key_or_the_secret() -> None:
    key = generate_key()
    sealed = box(key).encrypt("JBSWY3DPEHPK3PXP", context="totp:alice:f1")
    with pytest.raises(SecretDecryptError) as caught:
        box(key).decrypt(sealed, context="totp:alice:f2")
    text = str(caught.value)
    assert key not in text
    assert "JBSWY3DPEHPK3PXP" not in text
    assert sealed not in text


def test_the_key_id_is_the_start_of_the_keys_sha256() -> None:
    key = generate_key()
    (raw,) = parse_keys([key])
    assert box(key).encrypt("x", context="c").split(".")[1] == hashlib.sha256(raw).hexdigest()[:8]


def test_reencrypting_under_the_first_key_leaves_the_ciphertext_alone() -> None:
    secrets_box = box(generate_key(), generate_key())
    sealed = secrets_box.encrypt("secret", context="c")
    assert secrets_box.reencrypt(sealed, context="c") is None


def test_an_empty_key_list_cannot_make_a_box() -> None:
    with pytest.raises(ValueError, match="at least one"):
        AesGcmSecretBox([])
