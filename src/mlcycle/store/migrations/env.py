"""Alembic environment: runs on the connection that mlcycle hands it."""

from __future__ import annotations

from alembic import context

from mlcycle.store._tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    version_table="mlcycle_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
