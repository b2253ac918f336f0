"""One suite for every `FactorRepository`: SQL on SQLite and PostgreSQL, and the in-memory twin."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.adapters.memory import InMemoryFactorRepository
from mfa_pipeline.adapters.sql_repository import SqlFactorRepository, create_engine_for
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.domain.factors import Factor, FactorStatus
from mfa_pipeline.migrations import upgrade
from tests.fixtures.services import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mfa_pipeline.ports import FactorRepository


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FactorRepository]:
    if request.param == "memory":
        yield InMemoryFactorRepository()
        return
    url = (
        f"sqlite:///{tmp_path / 'mfa.sqlite3'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    upgrade(url)
    engine = create_engine_for(url)
    yield SqlFactorRepository(engine)
    engine.dispose()


def a_factor(user_id: str, factor_type: FactorType = FactorType.TOTP, **fields: object) -> Factor:
    values: dict[str, object] = {
        "factor_id": f"f_{uuid.uuid4().hex[:12]}",
        "user_id": user_id,
        "type": factor_type,
        "status": FactorStatus.PENDING,
        "created_at": 1000.0,
        "secret_ciphertext": "v1.abcd1234.ciphertext",
    }
    values.update(fields)
    return Factor(**values)  # type: ignore[arg-type]


def test_upserting_a_user_twice_keeps_one_record_with_the_new_firm(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id="a", now=1.0)
    again = repo.upsert_user("alice", firm_id="b", now=2.0)
    assert again.firm_id == "b"
    assert again.created_at == 1.0
    assert repo.get_user("alice") == again


def test_an_unknown_user_is_none(repo: FactorRepository) -> None:
    assert repo.get_user("nobody") is None


def test_a_factor_round_trips_with_every_field(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor(
        "alice",
        FactorType.SMS,
        secret_ciphertext=None,
        phone_ciphertext="v1.abcd1234.phone",
        phone_last2="23",
        phone_region="US",
        pending_challenge_id="00abc",
        label="work phone",
    )
    repo.add_factor(factor)
    assert repo.get_factor("alice", factor.factor_id) == factor
    assert repo.list_factors("alice") == [factor]


def test_a_factor_is_invisible_to_another_user(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    repo.upsert_user("bob", firm_id=None, now=1.0)
    factor = a_factor("alice")
    repo.add_factor(factor)
    assert repo.get_factor("bob", factor.factor_id) is None
    assert repo.delete_factor("bob", factor.factor_id) is False
    assert repo.activate_factor("bob", factor.factor_id, now=2.0) is False


def test_activation_happens_once(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor("alice", pending_challenge_id="00abc")
    repo.add_factor(factor)
    assert repo.activate_factor("alice", factor.factor_id, now=5.0) is True
    assert repo.activate_factor("alice", factor.factor_id, now=6.0) is False
    active = repo.get_factor("alice", factor.factor_id)
    assert active is not None
    assert (active.status, active.activated_at, active.pending_challenge_id) == (
        FactorStatus.ACTIVE,
        5.0,
        None,
    )


def test_a_totp_step_is_accepted_only_above_the_last_one(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor("alice")
    repo.add_factor(factor)
    assert repo.accept_totp_step(factor.factor_id, 100) is True
    assert repo.accept_totp_step(factor.factor_id, 100) is False
    assert repo.accept_totp_step(factor.factor_id, 99) is False
    assert repo.accept_totp_step(factor.factor_id, 101) is True
    stored = repo.get_factor("alice", factor.factor_id)
    assert stored is not None
    assert stored.last_totp_step == 101


def test_racing_acceptances_of_one_step_let_exactly_one_through(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor("alice")
    repo.add_factor(factor)
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def accept() -> None:
        barrier.wait()
        results.append(repo.accept_totp_step(factor.factor_id, 500))

    threads = [threading.Thread(target=accept) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_deleting_a_factor_removes_it(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor("alice")
    repo.add_factor(factor)
    assert repo.delete_factor("alice", factor.factor_id) is True
    assert repo.list_factors("alice") == []
    assert repo.delete_factor("alice", factor.factor_id) is False


def test_factors_are_listed_in_enrollment_order(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    later = a_factor("alice", created_at=20.0)
    earlier = a_factor("alice", FactorType.SMS, created_at=10.0)
    repo.add_factor(later)
    repo.add_factor(earlier)
    assert [f.factor_id for f in repo.list_factors("alice")] == [earlier.factor_id, later.factor_id]


def test_an_unreachable_database_is_unavailable_without_naming_the_url() -> None:
    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{free_port()}/nowhere"
    engine = create_engine_for(url)
    repo = SqlFactorRepository(engine)
    with pytest.raises(UnavailableError) as caught:
        repo.get_user("alice")
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)
    with pytest.raises(UnavailableError):
        repo.ping()
