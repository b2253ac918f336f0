"""Alembic environment: the connection comes from `mfa_pipeline.migrations`, not an ini file."""

from __future__ import annotations

from alembic import context

from mfa_pipeline.adapters.sql_models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
)
with context.begin_transaction():
    context.run_migrations()
