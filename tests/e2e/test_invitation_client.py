"""The Python client's invitation calls, sync and async, against the running API."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pyotp
import pytest

from mfa_pipeline.client import (
    ActorMfaRequiredError,
    AsyncMfaClient,
    ForbiddenError,
    InvalidRequestError,
    Invitations,
    MfaClient,
    SkippedInvitation,
)
from tests.fixtures.pipeline import MANAGE_KEY, new_user_id

if TYPE_CHECKING:
    from tests.doubles.clock import FrozenClock
    from tests.fixtures.pipeline import ApiServer

pytestmark = pytest.mark.usefixtures("worker")

FIRM = "firm-client"


def admin_with_mfa(mfa: MfaClient, clock: FrozenClock) -> str:
    admin_id = new_user_id()
    mfa.put_user(admin_id, firm_id=FIRM, role="admin")
    enrollment = mfa.enroll_totp(admin_id)
    mfa.activate_factor(
        admin_id, enrollment.factor_id, pyotp.TOTP(enrollment.secret).at(clock.now())
    )
    return admin_id


def test_the_sync_client_invites_reads_preauth_and_withdraws(
    api_server: ApiServer, clock: FrozenClock
) -> None:
    with MfaClient(api_server.url, api_key=MANAGE_KEY) as mfa:
        admin_id = admin_with_mfa(mfa, clock)
        user_id = new_user_id()
        mfa.put_user(user_id, firm_id=FIRM)
        unknown = new_user_id()
        result = mfa.invite_users(FIRM, actor_id=admin_id, user_ids=[user_id, unknown])
        assert result == Invitations(
            invited=[user_id], skipped=[SkippedInvitation(user_id=unknown, reason="unknown_user")]
        )
        pre = mfa.preauth(user_id)
        assert (pre.result, pre.invited, pre.invited_by) == ("bypass", True, admin_id)
        assert pre.invited_at is not None
        mfa.withdraw_invitation(FIRM, user_id, actor_id=admin_id)
        mfa.withdraw_invitation(FIRM, user_id, actor_id=admin_id)  # idempotent
        assert mfa.preauth(user_id).invited is False
        with pytest.raises(InvalidRequestError):
            mfa.invite_users(FIRM, actor_id=admin_id, user_ids=[])
        with pytest.raises(ForbiddenError):
            mfa.invite_users(FIRM, actor_id=user_id, user_ids=[user_id])


def test_the_async_client_invites_and_withdraws(api_server: ApiServer, clock: FrozenClock) -> None:
    with MfaClient(api_server.url, api_key=MANAGE_KEY) as sync:
        admin_id = admin_with_mfa(sync, clock)
        no_mfa_admin = new_user_id()
        sync.put_user(no_mfa_admin, firm_id=FIRM, role="admin")
        user_id = new_user_id()
        sync.put_user(user_id, firm_id=FIRM)

    async def scenario() -> None:
        async with AsyncMfaClient(api_server.url, api_key=MANAGE_KEY) as mfa:
            result = await mfa.invite_users(FIRM, actor_id=admin_id, user_ids=[user_id])
            assert result.invited == [user_id]
            assert (await mfa.preauth(user_id)).invited is True
            await mfa.withdraw_invitation(FIRM, user_id, actor_id=admin_id)
            assert (await mfa.preauth(user_id)).invited is False
            with pytest.raises(ActorMfaRequiredError):
                await mfa.invite_users(FIRM, actor_id=no_mfa_admin, user_ids=[user_id])

    asyncio.run(scenario())
