"""WebAuthn rules and the py_webauthn adapter against a software authenticator (no I/O)."""

from __future__ import annotations

import dataclasses

import pytest

from mfa_pipeline.adapters.py_webauthn import PyWebAuthnCeremony
from mfa_pipeline.domain.webauthn import (
    CredentialRejection,
    InvalidCredentialError,
    WebAuthnCredential,
    clean_name,
    counter_regressed,
    user_handle,
)
from tests.fakes.soft_authenticator import ORIGIN, SoftAuthenticator, b64url

RP = PyWebAuthnCeremony(rp_id="localhost", rp_name="Test", origins=[ORIGIN])


def registered(key: SoftAuthenticator) -> WebAuthnCredential:
    options = RP.registration_options(user_handle=user_handle("u1"), user_name="u1", exclude=[])
    verified = RP.verify_registration(key.create(options.public_key), challenge=options.challenge)
    return verified.stored_as(factor_id="f_1", user_id="u1", name="k", created_at=0.0)


@pytest.mark.parametrize(
    ("stored", "received", "regressed"),
    [(0, 0, False), (0, 1, False), (5, 6, False), (5, 5, True), (5, 4, True), (5, 0, True)],
)
def test_a_counter_that_does_not_grow_is_a_possible_clone_unless_both_are_zero(
    stored: int, received: int, regressed: bool
) -> None:
    assert counter_regressed(stored, received) is regressed


def test_names_are_trimmed_bounded_and_printable() -> None:
    assert clean_name("  Work\u0000 laptop \n") == "Work laptop"
    assert clean_name("") == "Passkey"
    assert len(clean_name("x" * 500)) == 64


def test_the_user_handle_is_stable_and_not_the_user_id() -> None:
    assert user_handle("alice") == user_handle("alice") != user_handle("bob")
    assert b"alice" not in user_handle("alice")


def test_a_registration_and_an_assertion_verify() -> None:
    key = SoftAuthenticator(backup_eligible=True)
    credential = registered(key)
    assert credential.credential_id == key.id
    assert credential.backup_eligible is True
    assert credential.transports == ("internal",)
    request = RP.authentication_options([credential])
    assert [c["id"] for c in request.public_key["allowCredentials"]] == [key.id]
    verified = RP.verify_assertion(
        key.get(request.public_key), challenge=request.challenge, stored=credential
    )
    assert verified.new_sign_count == 1


def test_the_adapter_leaves_the_counter_to_the_service() -> None:
    key = SoftAuthenticator()
    credential = registered(key)
    request = RP.authentication_options([credential])
    stale = dataclasses.replace(credential, sign_count=10)
    verified = RP.verify_assertion(
        key.get(request.public_key, sign_count=3), challenge=request.challenge, stored=stale
    )
    assert verified.new_sign_count == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "a b"), ("rawId", ""), ("response.clientDataJSON", "****")],
)
def test_fields_that_are_not_base64url_are_malformed(field: str, value: str) -> None:
    options = RP.registration_options(user_handle=b"h", user_name="u", exclude=[])
    credential = SoftAuthenticator().create(options.public_key)
    if field.startswith("response."):
        credential["response"][field.removeprefix("response.")] = value
    else:
        credential[field] = value
    with pytest.raises(InvalidCredentialError) as raised:
        RP.verify_registration(credential, challenge=options.challenge)
    assert raised.value.reason is CredentialRejection.MALFORMED
    assert raised.value.details["field"] == field


def test_a_registration_without_user_verification_is_refused() -> None:
    options = RP.registration_options(user_handle=b"h", user_name="u", exclude=[])
    credential = SoftAuthenticator(user_verified=False).create(options.public_key)
    with pytest.raises(InvalidCredentialError) as raised:
        RP.verify_registration(credential, challenge=options.challenge)
    assert raised.value.reason is CredentialRejection.USER_VERIFICATION_MISSING


def test_an_id_that_differs_from_the_raw_id_is_malformed() -> None:
    options = RP.registration_options(user_handle=b"h", user_name="u", exclude=[])
    credential = SoftAuthenticator().create(options.public_key)
    credential["id"] = b64url(b"another id")
    with pytest.raises(InvalidCredentialError) as raised:
        RP.verify_registration(credential, challenge=options.challenge)
    assert raised.value.reason is CredentialRejection.MALFORMED
