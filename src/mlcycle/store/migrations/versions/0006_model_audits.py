"""Audits of model versions.

An audit (``mlcycle audit``: explainability, fairness, robustness) is stored
with the version it audited: its JSON document and HTML report as artifacts,
a small summary the loop's gate and the model card read, who ran it and when.
A version keeps every audit ever run on it; the latest of each kind counts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "model_audits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kinds", sa.String(100), nullable=False),
        sa.Column("document_sha256", sa.String(64), nullable=False),
        sa.Column("report_sha256", sa.String(64), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_audits_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_sha256"],
            ["artifacts.sha256"],
            name=op.f("fk_model_audits_document_sha256_artifacts"),
        ),
        sa.ForeignKeyConstraint(
            ["report_sha256"],
            ["artifacts.sha256"],
            name=op.f("fk_model_audits_report_sha256_artifacts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_audits")),
    )
    op.create_index(
        op.f("ix_model_audits_version_id_created_at"), "model_audits", ["version_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_model_audits_version_id_created_at"), table_name="model_audits")
    op.drop_table("model_audits")
