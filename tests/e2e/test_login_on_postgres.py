"""The same logins with PostgreSQL as the enrollment store (production's database)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.test_login_flows import (
    test_a_totp_code_cannot_be_replayed_on_another_challenge,
    test_an_sms_code_reaches_the_phone_through_twilio_and_verifies,
)

if TYPE_CHECKING:
    from tests.fixtures.services import PostgresDatabases

__all__ = [
    "test_a_totp_code_cannot_be_replayed_on_another_challenge",
    "test_an_sms_code_reaches_the_phone_through_twilio_and_verifies",
]

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def settings_overrides(postgres_databases: PostgresDatabases) -> dict[str, Any]:
    return {"database_url": postgres_databases.create_migrated()}
