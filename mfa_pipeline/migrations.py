"""Schema migrations (Alembic), run by `mfa-pipeline db upgrade` and by `up` for SQLite."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from mfa_pipeline.adapters.sql_repository import create_engine_for


def _config() -> Config:
    config = Config()
    location = resources.files("mfa_pipeline.adapters") / "alembic"
    config.set_main_option("script_location", str(location))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    engine = create_engine_for(database_url)
    try:
        with engine.begin() as connection:
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def current_revision(database_url: str) -> str | None:
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
