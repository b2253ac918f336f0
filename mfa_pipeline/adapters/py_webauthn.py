"""The WebAuthn ceremonies through py_webauthn: options, attestation and assertion checks.

All CBOR, COSE and attestation parsing happens inside the library; this adapter only checks the
shape of the JSON (so that bad base64url is named as such) and names the library's refusals.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import TYPE_CHECKING

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    bytes_to_base64url,
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from mfa_pipeline.domain.webauthn import (
    CeremonyOptions,
    CredentialRejection,
    InvalidCredentialError,
    VerifiedAssertion,
    VerifiedRegistration,
    WebAuthnCredential,
)
from mfa_pipeline.ports import WebAuthnCeremony

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# ES256 (most security keys and passkeys), EdDSA (some keys), RS256 (Windows Hello).
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
# §13.4.3: at least 16 random bytes; 32 as the library's examples.
CHALLENGE_BYTES = 32
TIMEOUT_MS = 300_000

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_REGISTRATION_FIELDS = ("clientDataJSON", "attestationObject")
_ASSERTION_FIELDS = ("clientDataJSON", "authenticatorData", "signature")
_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)

# The library's refusals, by the start of its message, as the reasons the contract names.
_REASONS = (
    ("Client data challenge", CredentialRejection.CHALLENGE_MISMATCH),
    ("Unexpected client data origin", CredentialRejection.ORIGIN_NOT_ALLOWED),
    ("Unexpected RP ID hash", CredentialRejection.RP_ID_MISMATCH),
    ("User verification is required", CredentialRejection.USER_VERIFICATION_MISSING),
    ("Could not verify authentication signature", CredentialRejection.BAD_SIGNATURE),
    ("Unsupported", CredentialRejection.UNSUPPORTED),
    ("clientDataJSON was malformed", CredentialRejection.MALFORMED),
    ("attestationObject was malformed", CredentialRejection.MALFORMED),
    ("Unable to parse authenticator data", CredentialRejection.MALFORMED),
    ("id and raw_id were not equivalent", CredentialRejection.MALFORMED),
)


def _rejection(exc: Exception) -> InvalidCredentialError:
    message = str(exc)
    for start, reason in _REASONS:
        if message.startswith(start):
            return InvalidCredentialError(reason)
    return InvalidCredentialError(CredentialRejection.INVALID)


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _descriptor(credential: WebAuthnCredential) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in credential.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(
        id=_b64url(credential.credential_id), transports=transports or None
    )


def _check_shape(credential: Mapping[str, object], fields: tuple[str, ...]) -> str:
    """The credential's id, once every binary field is checked to be base64url text.

    The library decodes leniently: stray characters would be dropped rather than refused.
    """
    response = credential.get("response")
    if not isinstance(response, dict):
        raise InvalidCredentialError(CredentialRejection.MALFORMED, field="response")
    values: list[tuple[str, object]] = [
        ("id", credential.get("id")),
        ("rawId", credential.get("rawId")),
        *((f"response.{name}", response.get(name)) for name in fields),
    ]
    for name, value in values:
        if not isinstance(value, str) or not value or not _BASE64URL.match(value):
            raise InvalidCredentialError(CredentialRejection.MALFORMED, field=name)
        try:
            _b64url(value)
        except (binascii.Error, ValueError) as exc:
            raise InvalidCredentialError(CredentialRejection.MALFORMED, field=name) from exc
    credential_id = credential["id"]
    assert isinstance(credential_id, str)  # noqa: S101 - checked above
    return credential_id


class PyWebAuthnCeremony(WebAuthnCeremony):
    def __init__(self, *, rp_id: str, rp_name: str, origins: Sequence[str]) -> None:
        self._rp_id = rp_id
        self._rp_name = rp_name
        self._origins = list(origins)

    def registration_options(
        self, *, user_handle: bytes, user_name: str, exclude: Sequence[WebAuthnCredential]
    ) -> CeremonyOptions:
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        options = generate_registration_options(
            rp_id=self._rp_id,
            rp_name=self._rp_name,
            user_name=user_name,
            user_id=user_handle,
            user_display_name=user_name,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[_descriptor(c) for c in exclude],
            supported_pub_key_algs=ALGORITHMS,
        )
        return CeremonyOptions(public_key=options_to_json_dict(options), challenge=challenge)

    def verify_registration(
        self, credential: Mapping[str, object], *, challenge: bytes
    ) -> VerifiedRegistration:
        _check_shape(credential, _REGISTRATION_FIELDS)
        try:
            parsed = parse_registration_credential_json(dict(credential))
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                require_user_verification=True,
                supported_pub_key_algs=ALGORITHMS,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise _rejection(exc) from exc
        transports = tuple(t.value for t in parsed.response.transports or ())
        return VerifiedRegistration(
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            transports=transports,
            aaguid=verified.aaguid,
            backup_eligible=verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
        )

    def authentication_options(self, allow: Sequence[WebAuthnCredential]) -> CeremonyOptions:
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        options = generate_authentication_options(
            rp_id=self._rp_id,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[_descriptor(c) for c in allow],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return CeremonyOptions(public_key=options_to_json_dict(options), challenge=challenge)

    def credential_id(self, credential: Mapping[str, object], *, registration: bool) -> str:
        return _check_shape(credential, _REGISTRATION_FIELDS if registration else _ASSERTION_FIELDS)

    def verify_assertion(
        self, credential: Mapping[str, object], *, challenge: bytes, stored: WebAuthnCredential
    ) -> VerifiedAssertion:
        _check_shape(credential, _ASSERTION_FIELDS)
        try:
            parsed = parse_authentication_credential_json(dict(credential))
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                credential_public_key=_b64url(stored.public_key),
                # 0: the library's own counter check runs before the signature's; ours runs
                # after it, so that only a genuine signature can report a cloned key.
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise _rejection(exc) from exc
        return VerifiedAssertion(
            credential_id=bytes_to_base64url(verified.credential_id),
            new_sign_count=verified.new_sign_count,
            backed_up=verified.credential_backed_up,
        )
