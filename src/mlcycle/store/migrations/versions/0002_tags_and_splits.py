"""Run tags as their own table; recorded dataset splits.

Tags were first kept inside ``runs.summary['tags']``; this moves them to a
table that can be filtered on, and adds ``dataset_splits`` so that a version's
train/validation/test rows are fixed once recorded.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_tags_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_run_tags")),
    )
    op.create_table(
        "dataset_splits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_sha256"],
            ["artifacts.sha256"],
            name=op.f("fk_dataset_splits_artifact_sha256_artifacts"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_splits_version_id_dataset_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_splits")),
        sa.UniqueConstraint("version_id", "key", name=op.f("uq_dataset_splits_version_id_key")),
    )

    # Move tags out of the run summaries written by 0001.
    runs = sa.table("runs", sa.column("id", sa.String), sa.column("summary", sa.JSON))
    tags = sa.table(
        "run_tags",
        sa.column("run_id", sa.String),
        sa.column("key", sa.String),
        sa.column("value", sa.Text),
    )
    bind = op.get_bind()
    rows = []
    for run_id, summary in bind.execute(sa.select(runs.c.id, runs.c.summary)):
        for key, value in ((summary or {}).get("tags") or {}).items():
            rows.append({"run_id": run_id, "key": str(key), "value": str(value)})
        if summary and "tags" in summary:
            rest = {k: v for k, v in summary.items() if k != "tags"}
            bind.execute(runs.update().where(runs.c.id == run_id).values(summary=rest))
    if rows:
        bind.execute(tags.insert(), rows)


def downgrade() -> None:
    op.drop_table("dataset_splits")
    op.drop_table("run_tags")
