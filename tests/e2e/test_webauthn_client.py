"""The Python client's WebAuthn calls, sync and async, against the real API."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.client import (
    AsyncMfaClient,
    InvalidCredentialError,
    MfaClient,
    NotFoundError,
)
from tests.fakes.soft_authenticator import SoftAuthenticator
from tests.fixtures.pipeline import MANAGE_KEY, new_user_id

if TYPE_CHECKING:
    from tests.fixtures.pipeline import ApiServer


def test_the_sync_client_registers_a_passkey_signs_in_renames_and_removes_it(
    api_server: ApiServer,
) -> None:
    key = SoftAuthenticator()
    with MfaClient(api_server.url, api_key=MANAGE_KEY) as mfa:
        user_id = new_user_id()
        mfa.put_user(user_id, firm_id="firm-client")
        options = mfa.webauthn_options(user_id, name="Laptop")
        assert options.public_key["authenticatorSelection"]["userVerification"] == "required"
        added = mfa.register_webauthn(
            user_id, options.registration_id, key.create(options.public_key)
        )
        assert (added.type, added.status, added.name) == ("webauthn", "active", "Laptop")
        assert added.credential_id == key.id

        challenge = mfa.create_challenge(user_id, factor="auto")
        assert challenge.factor == "webauthn"
        assert challenge.public_key is not None
        verified = mfa.verify_webauthn(
            challenge.challenge_id, key.get(challenge.public_key), remember_device=True
        )
        assert verified.status == "verified"
        assert verified.trusted_token

        renamed = mfa.rename_factor(user_id, added.factor_id, "Work laptop")
        assert renamed.name == "Work laptop"
        (listed,) = mfa.list_factors(user_id)
        assert listed.last_used_at is not None
        mfa.delete_factor(user_id, added.factor_id)
        assert mfa.list_factors(user_id) == []


def test_the_async_client_raises_typed_errors_with_the_reason(api_server: ApiServer) -> None:
    async def scenario() -> None:
        key = SoftAuthenticator()
        async with AsyncMfaClient(api_server.url, api_key=MANAGE_KEY) as mfa:
            user_id = new_user_id()
            await mfa.put_user(user_id, firm_id="firm-client")
            options = await mfa.webauthn_options(user_id)
            phished = SoftAuthenticator(origin="https://evil.example")
            with pytest.raises(InvalidCredentialError) as refused:
                await mfa.register_webauthn(
                    user_id, options.registration_id, phished.create(options.public_key)
                )
            assert refused.value.reason == "origin_not_allowed"
            with pytest.raises(NotFoundError):  # the options were used up by that attempt
                await mfa.register_webauthn(
                    user_id, options.registration_id, key.create(options.public_key)
                )
            options = await mfa.webauthn_options(user_id)
            await mfa.register_webauthn(
                user_id, options.registration_id, key.create(options.public_key), name="Key"
            )
            challenge = await mfa.create_challenge(user_id, factor="webauthn")
            assert challenge.public_key is not None
            wrong = key.get(challenge.public_key, origin="https://evil.example")
            with pytest.raises(InvalidCredentialError) as refused:
                await mfa.verify_webauthn(challenge.challenge_id, wrong)
            assert refused.value.attempts_remaining == 4
            verified = await mfa.verify_webauthn(
                challenge.challenge_id, key.get(challenge.public_key)
            )
            assert verified.status == "verified"

    asyncio.run(scenario())
