"""Schema migrations (Alembic), run by `mfa-pipeline db upgrade` and by `up` for SQLite.

The migration scripts ship inside the package and the Alembic configuration is built here,
so an installed wheel migrates its database with no `alembic.ini` and no source checkout.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mfa_pipeline.adapters.sql_repository import create_engine_for

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry

# Any fixed number will do: every upgrader of one PostgreSQL database takes the same lock.
_ADVISORY_LOCK_ID = 0x6D6661  # "mfa"


def _config() -> Config:
    config = Config()
    location = resources.files("mfa_pipeline.adapters") / "alembic"
    config.set_main_option("script_location", str(location))
    return config


def head_revision() -> str:
    """The newest revision the installed package knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise RuntimeError("no migrations found in the package")
    return head


def _migration_engine(database_url: str) -> sa.Engine:
    engine = create_engine_for(database_url)
    if engine.dialect.name == "sqlite":
        # pysqlite runs DDL outside any transaction; take over BEGIN and make it IMMEDIATE so
        # the whole upgrade is one transaction holding the write lock, and a second process
        # upgrading at the same moment waits, then finds the schema already at head.
        sa.event.listen(engine, "connect", _sqlite_manual_transactions)
        sa.event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_manual_transactions(
    dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry
) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: sa.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate to `revision`; safe to run from several processes at once, and to repeat."""
    engine = _migration_engine(database_url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Released at commit: concurrent upgraders run one after another.
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID}
                )
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None before the first upgrade."""
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
