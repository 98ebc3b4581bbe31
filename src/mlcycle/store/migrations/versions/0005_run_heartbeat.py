"""Run heartbeats; best epochs counted from 1.

A training process writes ``heartbeat_at`` (and how often it means to) while
it works, so a run whose process died without a word (SIGKILL, out of
memory, power loss) can be told from one still training: it shows as
interrupted once its heartbeat is stale. Training runs left ``running`` by
earlier versions get their start time as heartbeat, so they show as
interrupted too instead of running forever.

``summary.best_epoch`` was an index from 0 while ``mlcycle train`` printed it
from 1; it is stored from 1 now (None when no epoch was best), and older
summaries are moved to the same count.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)

_runs = sa.table(
    "runs",
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("params", sa.JSON),
    sa.column("summary", sa.JSON),
    sa.column("started_at", Time),
    sa.column("heartbeat_at", Time),
)


def _shift_best_epoch(by: int) -> None:
    bind = op.get_bind()
    for run_id, summary in bind.execute(sa.select(_runs.c.id, _runs.c.summary)):
        best = (summary or {}).get("best_epoch")
        if isinstance(best, int) and not isinstance(best, bool):
            moved: Any = best + by
            if by > 0 and best < 0:
                moved = None  # -1 meant "no epoch improved"
            new = {**summary, "best_epoch": moved}
        elif by < 0 and summary and "best_epoch" in summary and best is None:
            new = {**summary, "best_epoch": -1}
        else:
            continue
        bind.execute(_runs.update().where(_runs.c.id == run_id).values(summary=new))


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", Time, nullable=True))
        batch.add_column(sa.Column("heartbeat_every_s", sa.Float(), nullable=True))
    _shift_best_epoch(+1)
    bind = op.get_bind()
    running = bind.execute(
        sa.select(_runs.c.id, _runs.c.params, _runs.c.started_at).where(_runs.c.status == "running")
    ).all()
    for run_id, params, started_at in running:
        if "train" in (params or {}):
            bind.execute(_runs.update().where(_runs.c.id == run_id).values(heartbeat_at=started_at))


def downgrade() -> None:
    _shift_best_epoch(-1)
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_every_s")
        batch.drop_column("heartbeat_at")
