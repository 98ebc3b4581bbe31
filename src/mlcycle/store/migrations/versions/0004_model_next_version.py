"""Version numbers are never reused: a counter on each registered model.

Until now a new version was numbered max(existing) + 1, so deleting the
latest version handed its number to the next registration, and a server or a
prediction log holding ``fraud@2`` then meant another model. Each model now
keeps ``next_version``; this migration sets it past every number the model
ever had: its versions, and the ``model.registered`` / ``model.deleted``
events of versions deleted since (the event log is append-only, so it still
holds them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "registered_models",
        sa.Column("next_version", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    models = sa.table(
        "registered_models",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("next_version", sa.Integer),
    )
    versions = sa.table(
        "model_versions", sa.column("model_id", sa.Integer), sa.column("version", sa.Integer)
    )
    events = sa.table(
        "events",
        sa.column("action", sa.String),
        sa.column("entity_type", sa.String),
        sa.column("entity_id", sa.String),
        sa.column("details", sa.JSON),
    )
    bind = op.get_bind()
    highest: dict[str, int] = {}
    existing = (
        sa.select(models.c.name, sa.func.max(versions.c.version))
        .join(versions, versions.c.model_id == models.c.id)
        .group_by(models.c.name)
    )
    for name, version in bind.execute(existing):
        highest[name] = max(highest.get(name, 0), int(version))
    recorded = sa.select(events.c.entity_id, events.c.details).where(
        events.c.entity_type == "model",
        events.c.action.in_(("model.registered", "model.deleted")),
    )
    for name, details in bind.execute(recorded):
        version = details.get("version") if isinstance(details, dict) else None
        if isinstance(version, int):
            highest[name] = max(highest.get(name, 0), version)
    for model_id, name in bind.execute(sa.select(models.c.id, models.c.name)).all():
        if name in highest:
            bind.execute(
                models.update()
                .where(models.c.id == model_id)
                .values(next_version=highest[name] + 1)
            )


def downgrade() -> None:
    with op.batch_alter_table("registered_models") as batch:
        batch.drop_column("next_version")
