"""The Alembic migrations build the schema the models map, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mfa_pipeline.adapters.sql_migrations import current_revision, head_revision, upgrade
from mfa_pipeline.adapters.sql_models import Base
from mfa_pipeline.adapters.sql_repository import SqlFactorRepository, create_engine_for
from mfa_pipeline.domain.factors import Role

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_the_package_ships_its_migrations() -> None:
    assert head_revision()


def test_upgrade_reaches_the_head_revision(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()


def test_upgrading_twice_changes_nothing(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()


def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine_for(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_the_first_revision_builds_users_and_factors(database_url: str) -> None:
    upgrade(database_url, "0001")
    engine = create_engine_for(database_url)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert {"users", "factors"} <= tables
    assert current_revision(database_url) == "0001"


def test_processes_upgrading_at_once_all_succeed(database_url: str) -> None:
    """Every API and worker replica may run `db upgrade` at start; they must queue, not fail."""
    script = (
        "import sys\n"
        "from mfa_pipeline.adapters.sql_migrations import upgrade\n"
        "upgrade(sys.argv[1])\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, database_url],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(p.wait(timeout=60), p.communicate()[1]) for p in processes]
    assert [code for code, _ in outcomes] == [0] * 4, [err[-500:] for _, err in outcomes]
    assert current_revision(database_url) == head_revision()


def test_users_from_before_roles_become_members_with_open_factors(database_url: str) -> None:
    upgrade(database_url, "0003")
    engine = create_engine_for(database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO users (user_id, firm_id, created_at, updated_at) "
                "VALUES ('alice', 'firm-a', 1, 1)"
            )
        )
    upgrade(database_url)
    user = SqlFactorRepository(engine).get_user("alice")
    engine.dispose()
    assert user is not None
    assert (user.role, user.locked_until) == (Role.MEMBER, None)


def test_invitations_arrive_with_0006_and_end_with_their_user(database_url: str) -> None:
    upgrade(database_url, "0005")
    engine = create_engine_for(database_url)
    assert "mfa_invitations" not in sa.inspect(engine).get_table_names()
    upgrade(database_url)
    assert "mfa_invitations" in sa.inspect(engine).get_table_names()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO users (user_id, firm_id, created_at, updated_at) "
                "VALUES ('alice', 'firm-a', 1, 1)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO mfa_invitations "
                "(user_id, invitation_id, firm_id, invited_by, invited_at) "
                "VALUES ('alice', 'inv_1', 'firm-a', 'admin', 2)"
            )
        )
        connection.execute(sa.text("DELETE FROM users WHERE user_id = 'alice'"))
        left = connection.execute(sa.text("SELECT count(*) FROM mfa_invitations")).scalar()
    engine.dispose()
    assert left == 0
