"""One suite for every `FactorRepository`: SQL on SQLite and PostgreSQL, and the in-memory twin."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from mfa_pipeline.adapters import sql_repository
from mfa_pipeline.adapters.sql_migrations import upgrade
from mfa_pipeline.adapters.sql_repository import SqlFactorRepository, create_engine_for
from mfa_pipeline.adapters.sql_webauthn import SqlWebAuthnCredentialRepository
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.domain.factors import Factor, FactorStatus, Role
from mfa_pipeline.domain.webauthn import WebAuthnCredential
from tests.doubles.memory_factors import InMemoryFactorRepository
from tests.fixtures.services import free_port, migrated_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from mfa_pipeline.ports import FactorRepository

RACERS = 8
T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FactorRepository]:
    if request.param == "memory":
        yield InMemoryFactorRepository()
        return
    engine = create_engine_for(migrated_url(request.param, request, tmp_path))
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


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_passkeys_credential_comes_with_its_factor_in_the_one_read(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'mfa.sqlite3'}"
        if store == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    upgrade(url)
    engine = create_engine_for(url)
    try:
        repo, credentials = SqlFactorRepository(engine), SqlWebAuthnCredentialRepository(engine)
        repo.upsert_user("alice", firm_id=None, now=1.0)
        totp = a_factor("alice", status=FactorStatus.ACTIVE)
        repo.add_factor(totp)
        key = a_factor(
            "alice", FactorType.WEBAUTHN, status=FactorStatus.ACTIVE, secret_ciphertext=None
        )
        stored = WebAuthnCredential(
            factor_id=key.factor_id,
            user_id="alice",
            credential_id=f"cred-{uuid.uuid4().hex}",
            public_key="pQECAyYgASFYIA",
            sign_count=7,
            transports=("internal", "hybrid"),
            aaguid="00000000-0000-0000-0000-000000000000",
            backup_eligible=True,
            backed_up=False,
            name="Laptop",
            created_at=key.created_at,
        )
        credentials.add(replace(key, label="Laptop"), stored)
        _, factors = repo.get_user_with_factors("alice")
        by_id = {f.factor_id: f for f in factors}
        assert by_id[totp.factor_id].credential is None
        assert by_id[key.factor_id].credential == stored == credentials.for_user("alice")[0]
    finally:
        engine.dispose()


def race(attempt: Callable[[], T], racers: int = RACERS) -> list[T]:
    """Run `attempt` in `racers` threads released at once; each has its own connection."""
    barrier = threading.Barrier(racers)

    def go() -> T:
        barrier.wait()
        return attempt()

    with ThreadPoolExecutor(max_workers=racers) as pool:
        futures = [pool.submit(go) for _ in range(racers)]
        return [f.result() for f in futures]


def test_upserting_a_user_twice_keeps_one_record_with_the_new_firm(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id="a", now=1.0)
    again = repo.upsert_user("alice", firm_id="b", now=2.0)
    assert again.firm_id == "b"
    assert again.created_at == 1.0
    assert repo.get_user("alice") == again


def test_an_unknown_user_is_none(repo: FactorRepository) -> None:
    assert repo.get_user("nobody") is None
    assert repo.get_user_with_factors("nobody") == (None, [])


def test_a_user_and_their_factors_come_in_one_read(repo: FactorRepository) -> None:
    user = repo.upsert_user("alice", firm_id="firm-a", now=1.0)
    assert repo.get_user_with_factors("alice") == (user, [])
    repo.upsert_user("bob", firm_id=None, now=1.0)
    later = a_factor("alice", created_at=20.0)
    earlier = a_factor("alice", FactorType.SMS, created_at=10.0, phone_ciphertext="v1.x.y")
    repo.add_factor(later)
    repo.add_factor(earlier)
    repo.add_factor(a_factor("bob"))
    assert repo.get_user_with_factors("alice") == (user, [earlier, later])


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


def test_racing_activations_activate_exactly_once(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor("alice")
    repo.add_factor(factor)
    results = race(lambda: repo.activate_factor("alice", factor.factor_id, now=5.0))
    assert sorted(results) == [False] * (RACERS - 1) + [True]


def test_racing_upserts_of_a_new_user_all_succeed_with_one_record(
    repo: FactorRepository,
) -> None:
    users = race(lambda: repo.upsert_user("carol", firm_id="acme", now=3.0))
    assert {(u.user_id, u.firm_id, u.created_at) for u in users} == {("carol", "acme", 3.0)}
    assert repo.get_user("carol") == users[0]


def test_a_factor_of_an_unknown_user_is_refused(repo: FactorRepository) -> None:
    with pytest.raises((IntegrityError, ValueError)):
        repo.add_factor(a_factor("nobody"))


def test_a_second_factor_with_the_same_id_is_refused(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor("alice")
    repo.add_factor(factor)
    with pytest.raises((IntegrityError, ValueError)):
        repo.add_factor(factor)


def test_a_satellite_number_keeps_its_non_geographic_region(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor("alice", FactorType.SMS, phone_region="001", phone_last2="78")
    repo.add_factor(factor)
    assert repo.get_factor("alice", factor.factor_id) == factor


def test_setting_the_pending_challenge_is_seen_by_readers(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor("alice", FactorType.SMS)
    repo.add_factor(factor)
    repo.set_pending_challenge("alice", factor.factor_id, "00fchallenge")
    repo.set_pending_challenge("bob", factor.factor_id, "00fother")
    stored = repo.get_factor("alice", factor.factor_id)
    assert stored is not None
    assert stored.pending_challenge_id == "00fchallenge"


def test_a_reachable_database_pings(repo: FactorRepository) -> None:
    repo.ping()


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


@pytest.fixture(params=["sqlite", "postgres"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mfa.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


def test_database_errors_never_carry_the_stored_values(sql_url: str) -> None:
    upgrade(sql_url)
    engine = create_engine_for(sql_url)
    repo = SqlFactorRepository(engine)
    repo.upsert_user("alice", firm_id=None, now=1.0)
    factor = a_factor("alice", secret_ciphertext="v1.abcd1234.SEALED-SECRET")
    repo.add_factor(factor)
    with pytest.raises(IntegrityError) as caught:
        repo.add_factor(factor)
    engine.dispose()
    assert "SEALED-SECRET" not in str(caught.value)


def test_sqlite_connections_share_the_file_safely(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'nested' / 'mfa.sqlite3'}")
    with engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    engine.dispose()
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["foreign_keys"] == 1
    assert int(pragmas["busy_timeout"] or 0) >= 1000


def _kill_pooled_connection(engine: sa.Engine, admin_url: str) -> None:
    """Terminate the backend of the one connection waiting in `engine`'s pool (a failover)."""
    with engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    admin = sa.create_engine(admin_url)
    with admin.connect() as connection:
        connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


@pytest.fixture
def pg_alice(migrated_postgres_url: str) -> Iterator[tuple[sa.Engine, SqlFactorRepository]]:
    """A PostgreSQL repository holding user alice, its engine's pool warm."""
    engine = create_engine_for(migrated_postgres_url)
    repo = SqlFactorRepository(engine)
    repo.upsert_user("alice", firm_id=None, now=1.0)
    yield engine, repo
    engine.dispose()


def test_a_postgresql_connection_that_died_while_idle_is_replaced_before_use(
    pg_alice: tuple[sa.Engine, SqlFactorRepository],
    migrated_postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every checkout counts as idle: the ping runs, as it does after a pause in traffic.
    monkeypatch.setattr(sql_repository, "PING_BYPASS_SECONDS", 0.0)
    engine, repo = pg_alice
    _kill_pooled_connection(engine, migrated_postgres_url)
    user, _ = repo.get_user_with_factors("alice")  # no 503: the dead connection was replaced
    assert user is not None
    assert user.user_id == "alice"


def test_a_postgresql_connection_in_use_a_moment_ago_is_not_pinged_and_a_loss_costs_one_503(
    pg_alice: tuple[sa.Engine, SqlFactorRepository],
    migrated_postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sql_repository, "PING_BYPASS_SECONDS", 3600.0)
    engine, repo = pg_alice
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    repo.get_user_with_factors("alice")
    assert len(statements) == 1  # one statement; the 503 below shows no ping ran either
    _kill_pooled_connection(engine, migrated_postgres_url)
    with pytest.raises(UnavailableError):
        repo.get_user_with_factors("alice")
    user, _ = repo.get_user_with_factors("alice")  # the pool recovered by itself
    assert user is not None


def test_putting_a_user_keeps_fields_left_out_and_returns_what_it_replaced(
    repo: FactorRepository,
) -> None:
    before, created = repo.put_user("alice", firm_id="firm-a", role=None, now=1.0)
    assert before is None
    assert (created.firm_id, created.role) == ("firm-a", Role.MEMBER)
    before, kept = repo.put_user("alice", firm_id=None, role=None, now=2.0)
    assert before == created
    assert kept == created
    _, promoted = repo.put_user("alice", firm_id=None, role=Role.ADMIN, now=3.0)
    assert (promoted.firm_id, promoted.role) == ("firm-a", Role.ADMIN)
    assert repo.get_user_with_factors("alice")[0] == promoted


def test_the_code_factor_lock_is_taken_and_lifted_once(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id="firm-a", now=1.0)
    results = race(lambda: repo.lock_code_factors("alice", now=10.0, until=100.0))
    assert sorted(results) == [False] * (RACERS - 1) + [True]
    user = repo.get_user("alice")
    assert user is not None
    assert user.locked_until == 100.0
    assert user.code_factors_locked(99.0)
    assert not user.code_factors_locked(100.0)
    lifted = race(lambda: repo.unlock_code_factors("alice", now=20.0))
    assert sorted(lifted) == [False] * (RACERS - 1) + [True]
    assert repo.get_user("alice") == replace(user, locked_until=None)


def test_a_lapsed_lock_is_not_lifted_and_can_be_taken_again(repo: FactorRepository) -> None:
    repo.upsert_user("alice", firm_id="firm-a", now=1.0)
    assert repo.lock_code_factors("alice", now=10.0, until=100.0)
    assert not repo.unlock_code_factors("alice", now=100.0)
    assert repo.lock_code_factors("alice", now=150.0, until=250.0)
