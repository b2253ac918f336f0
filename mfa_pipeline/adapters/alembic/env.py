"""Alembic environment: the connection comes from `sql_migrations.py`, not an ini file.

`sql_migrations.upgrade` passes an open connection, already in a transaction and holding the
upgrade lock. A developer's own Alembic run may set `sqlalchemy.url` instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic import context

from mfa_pipeline.adapters.sql_models import Base
from mfa_pipeline.adapters.sql_repository import create_engine_for

if TYPE_CHECKING:
    import sqlalchemy as sa


def run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError(
            "run migrations with mfa_pipeline.adapters.sql_migrations.upgrade(database_url)"
        )
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            run(connection)
    finally:
        engine.dispose()
