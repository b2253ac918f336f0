"""Invitations in SQL on SQLite and PostgreSQL: stored all or nothing, ended by enrolling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from mfa_pipeline.adapters.sql_invitations import SqlInvitationRepository
from mfa_pipeline.adapters.sql_repository import SqlFactorRepository, create_engine_for
from mfa_pipeline.adapters.sql_webauthn import SqlWebAuthnCredentialRepository
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.domain.factors import Factor, FactorStatus
from mfa_pipeline.domain.invitations import Candidate, Invitation
from mfa_pipeline.domain.webauthn import WebAuthnCredential

if TYPE_CHECKING:
    from collections.abc import Iterator

FIRM = "firm-a"


@pytest.fixture
def engine(migrated_database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine_for(migrated_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factors(engine: sa.Engine) -> SqlFactorRepository:
    repo = SqlFactorRepository(engine)
    for user_id in ("alice", "bob"):
        repo.put_user(user_id, firm_id=FIRM, role=None, now=1.0)
    return repo


def invitation(user_id: str, n: int = 1) -> Invitation:
    return Invitation(
        invitation_id=f"inv_{user_id}_{n}",
        user_id=user_id,
        firm_id=FIRM,
        invited_by="admin",
        invited_at=100.0 + n,
    )


def factor(user_id: str, kind: FactorType, status: FactorStatus) -> Factor:
    return Factor(
        factor_id=f"f_{user_id}_{kind.value}",
        user_id=user_id,
        type=kind,
        status=status,
        created_at=1.0,
        activated_at=1.0 if status is FactorStatus.ACTIVE else None,
    )


def test_an_invitation_is_stored_with_who_by_whom_and_when(
    engine: sa.Engine, factors: SqlFactorRepository
) -> None:
    del factors
    repo = SqlInvitationRepository(engine)
    repo.add_all([invitation("alice")])
    assert repo.open_for("alice") == invitation("alice")
    assert repo.open_for("bob") is None


def test_a_batch_naming_a_missing_user_stores_nothing(
    engine: sa.Engine, factors: SqlFactorRepository
) -> None:
    del factors
    repo = SqlInvitationRepository(engine)
    with pytest.raises((sa.exc.IntegrityError, UnavailableError)):
        repo.add_all([invitation("alice"), invitation("ghost")])
    assert repo.open_among(["alice", "ghost"]) == {}


def test_candidates_tell_the_firm_and_whether_the_user_is_enrolled(
    engine: sa.Engine, factors: SqlFactorRepository
) -> None:
    factors.add_factor(factor("bob", FactorType.TOTP, FactorStatus.PENDING))
    repo = SqlInvitationRepository(engine)
    assert repo.candidates(["alice", "bob", "ghost"]) == {
        "alice": Candidate("alice", FIRM, enrolled=False),
        "bob": Candidate("bob", FIRM, enrolled=False),  # a pending factor is not enrollment
    }
    factors.activate_factor("bob", "f_bob_totp", now=2.0)
    assert repo.candidates(["bob"])["bob"].enrolled is True


def test_activating_a_totp_or_sms_factor_ends_the_invitation_for_good(
    engine: sa.Engine, factors: SqlFactorRepository
) -> None:
    repo = SqlInvitationRepository(engine)
    repo.add_all([invitation("alice")])
    factors.add_factor(factor("alice", FactorType.SMS, FactorStatus.PENDING))
    assert repo.open_for("alice") is not None  # still invited while the code is on its way
    assert factors.activate_factor("alice", "f_alice_sms", now=2.0)
    assert repo.open_for("alice") is None
    factors.delete_factor("alice", "f_alice_sms")
    assert repo.open_for("alice") is None  # removing the factor does not bring it back


def test_registering_a_push_device_ends_the_invitation(
    engine: sa.Engine, factors: SqlFactorRepository
) -> None:
    repo = SqlInvitationRepository(engine)
    repo.add_all([invitation("alice")])
    factors.add_factor(factor("alice", FactorType.PUSH, FactorStatus.ACTIVE))
    factors.delete_factor("alice", "f_alice_push")
    assert repo.open_for("alice") is None


def test_registering_a_webauthn_credential_ends_the_invitation(
    engine: sa.Engine, factors: SqlFactorRepository
) -> None:
    repo = SqlInvitationRepository(engine)
    repo.add_all([invitation("alice")])
    SqlWebAuthnCredentialRepository(engine).add(
        factor("alice", FactorType.WEBAUTHN, FactorStatus.ACTIVE),
        WebAuthnCredential(
            factor_id="f_alice_webauthn",
            user_id="alice",
            credential_id="Y3JlZA",
            public_key="a2V5",
            sign_count=0,
            transports=(),
            aaguid="",
            backup_eligible=False,
            backed_up=False,
            name="My key",
            created_at=1.0,
        ),
    )
    assert repo.open_for("alice") is None


def test_withdrawing_removes_only_that_firms_invitation_once(
    engine: sa.Engine, factors: SqlFactorRepository
) -> None:
    del factors
    repo = SqlInvitationRepository(engine)
    repo.add_all([invitation("alice")])
    assert repo.withdraw("firm-b", "alice") is None
    assert repo.withdraw(FIRM, "alice") == invitation("alice")
    assert repo.withdraw(FIRM, "alice") is None
    assert repo.open_for("alice") is None


def test_inviting_again_after_a_withdrawal_stores_a_new_invitation(
    engine: sa.Engine, factors: SqlFactorRepository
) -> None:
    del factors
    repo = SqlInvitationRepository(engine)
    repo.add_all([invitation("alice", 1)])
    repo.withdraw(FIRM, "alice")
    repo.add_all([invitation("alice", 2)])
    assert repo.open_for("alice") == invitation("alice", 2)
