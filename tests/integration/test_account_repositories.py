"""One suite for backup-code and trusted-session repositories: SQLite, PostgreSQL and the twins."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.adapters.sql_account import SqlBackupCodeRepository, SqlTrustedSessionRepository
from mfa_pipeline.adapters.sql_repository import SqlFactorRepository, create_engine_for
from tests.doubles.memory_account import (
    InMemoryBackupCodeRepository,
    InMemoryTrustedSessionRepository,
)
from tests.fixtures.services import migrated_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from mfa_pipeline.ports import BackupCodeRepository, TrustedSessionRepository

USERS = ("alice", "bob")


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def repos(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[BackupCodeRepository, TrustedSessionRepository]]:
    if request.param == "memory":
        yield InMemoryBackupCodeRepository(), InMemoryTrustedSessionRepository()
        return
    engine = create_engine_for(migrated_url(request.param, request, tmp_path))
    users = SqlFactorRepository(engine)
    for user_id in USERS:  # the SQL rows reference their user
        users.upsert_user(user_id, firm_id=None, now=1.0)
    yield SqlBackupCodeRepository(engine), SqlTrustedSessionRepository(engine)
    engine.dispose()


@pytest.fixture
def codes(repos: tuple[BackupCodeRepository, TrustedSessionRepository]) -> BackupCodeRepository:
    return repos[0]


@pytest.fixture
def sessions(
    repos: tuple[BackupCodeRepository, TrustedSessionRepository],
) -> TrustedSessionRepository:
    return repos[1]


def a_set(prefix: str, count: int = 10) -> list[tuple[str, str]]:
    return [(f"{prefix}{i:04x}", f"$argon2id$hash-{prefix}-{i}") for i in range(count)]


# --- backup codes ----------------------------------------------------------------------------


def test_stored_codes_are_found_by_user_and_lookup_while_unused(
    codes: BackupCodeRepository,
) -> None:
    codes.replace_codes("alice", "b1", a_set("a"), now=10.0)
    (found,) = codes.unused_candidates("alice", "a0003")
    assert (found.lookup, found.code_hash) == ("a0003", "$argon2id$hash-a-3")
    assert codes.unused_candidates("bob", "a0003") == []
    assert codes.unused_candidates("alice", "zzzz") == []
    assert codes.used_candidates("alice", "a0003") == []
    assert codes.remaining("alice") == 10


def test_a_burned_code_moves_from_unused_to_used_and_burns_once(
    codes: BackupCodeRepository,
) -> None:
    codes.replace_codes("alice", "b1", a_set("a"), now=10.0)
    (found,) = codes.unused_candidates("alice", "a0001")
    assert codes.burn(found.code_id, now=11.0) is True
    assert codes.burn(found.code_id, now=12.0) is False
    assert codes.unused_candidates("alice", "a0001") == []
    assert codes.used_candidates("alice", "a0001") == [found]
    assert codes.remaining("alice") == 9


def test_a_new_set_replaces_the_old_one_and_leaves_other_users_alone(
    codes: BackupCodeRepository,
) -> None:
    codes.replace_codes("alice", "b1", a_set("a"), now=10.0)
    codes.replace_codes("bob", "b2", a_set("b", 3), now=10.0)
    codes.replace_codes("alice", "b3", a_set("c", 10), now=20.0)
    assert codes.unused_candidates("alice", "a0001") == []
    assert codes.used_candidates("alice", "a0001") == []
    assert len(codes.unused_candidates("alice", "c0001")) == 1
    assert codes.remaining("alice") == 10
    assert codes.remaining("bob") == 3


def test_deleting_all_codes_of_a_user_counts_them(codes: BackupCodeRepository) -> None:
    codes.replace_codes("alice", "b1", a_set("a"), now=10.0)
    codes.replace_codes("bob", "b2", a_set("b", 3), now=10.0)
    assert codes.delete_all("alice") == 10
    assert codes.remaining("alice") == 0
    assert codes.delete_all("alice") == 0
    assert codes.remaining("bob") == 3


def test_of_eight_racing_burns_of_one_code_exactly_one_wins(
    codes: BackupCodeRepository,
) -> None:
    codes.replace_codes("alice", "b1", a_set("a"), now=10.0)
    (found,) = codes.unused_candidates("alice", "a0000")
    barrier = threading.Barrier(8)
    results: list[bool] = []
    lock = threading.Lock()

    def burn() -> None:
        barrier.wait()
        won = codes.burn(found.code_id, now=11.0)
        with lock:
            results.append(won)

    threads = [threading.Thread(target=burn) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * 7 + [True]
    assert codes.remaining("alice") == 9


# --- trusted sessions ------------------------------------------------------------------------


def test_a_session_is_valid_for_its_user_until_it_expires(
    sessions: TrustedSessionRepository,
) -> None:
    sessions.add("h" * 64, user_id="alice", application="manage", now=10.0, expires_at=100.0)
    assert sessions.is_valid("h" * 64, user_id="alice", now=99.9) is True
    assert sessions.is_valid("h" * 64, user_id="alice", now=100.0) is False
    assert sessions.is_valid("h" * 64, user_id="bob", now=50.0) is False
    assert sessions.is_valid("x" * 64, user_id="alice", now=50.0) is False


def test_revoking_ends_every_session_of_the_user_only(
    sessions: TrustedSessionRepository,
) -> None:
    sessions.add("a" * 64, user_id="alice", application="manage", now=10.0, expires_at=100.0)
    sessions.add("b" * 64, user_id="alice", application="grow", now=10.0, expires_at=100.0)
    sessions.add("c" * 64, user_id="bob", application=None, now=10.0, expires_at=100.0)
    assert sessions.revoke_all("alice", now=20.0) == 2
    assert sessions.revoke_all("alice", now=21.0) == 0
    assert sessions.is_valid("a" * 64, user_id="alice", now=30.0) is False
    assert sessions.is_valid("b" * 64, user_id="alice", now=30.0) is False
    assert sessions.is_valid("c" * 64, user_id="bob", now=30.0) is True
