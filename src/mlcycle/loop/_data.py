"""Fresh labelled data for a retraining, from the prediction log and its feedback.

The loop retrains on rows the served model saw and whose true labels came
back later: the logged inputs joined with the feedback by request id. Those
rows are cut, with a seed, into a part to train on and a held-out part that
neither the champion nor the challenger trains on: the gate's judge. Both
become dataset versions (content-addressed: the same rows give the same
version, so a restarted loop finds what it made before), and an event
records the parts each was made from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.errors import DataError
from mlcycle.monitor._performance import join_feedback
from mlcycle.predictions import INPUT_PREFIX, PredictionLog

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = ["RetrainData", "labelled_rows", "retraining_data"]


def labelled_rows(
    project: Project,
    version: ModelVersionRecord,
    *,
    since: datetime | None = None,
    versions: set[int] | None = None,
) -> pa.Table:
    """Served rows of ``version``'s model with their true label, oldest first.

    Columns: the model's inputs by their own names, the target, and ``time``.
    ``since`` keeps rows logged at or after it; ``versions`` only rows those
    versions answered.
    """
    log = PredictionLog(project.root / ".mlcycle" / "log")
    try:
        table = log.read(version.name, source="serve", since=since)
        feedback = log.read_feedback(since=since)
    finally:
        log.close()
    target = str(version.signature.get("target"))
    names = [s["name"] for s in version.signature["inputs"]]
    empty = pa.table({n: pa.array([], pa.float64()) for n in [*names, target]})
    if table.num_rows == 0 or feedback.num_rows == 0:
        return empty
    if versions is not None:
        wanted = pa.array(sorted(versions), pa.int32())
        table = table.filter(pc.is_in(table.column("version"), wanted))
    joined = join_feedback(table, feedback)
    if joined.num_rows == 0:
        return empty
    joined = joined.sort_by([("time", "ascending")])
    columns: dict[str, Any] = {}
    for spec in version.signature["inputs"]:
        column = joined.column(INPUT_PREFIX + spec["name"])
        if spec["kind"] == "categorical":
            columns[spec["name"]] = column.cast(pa.string())
        elif spec["kind"] == "boolean":
            columns[spec["name"]] = pc.not_equal(column.cast(pa.float64()), 0.0)
        else:
            columns[spec["name"]] = column.cast(pa.float64())
    actual = joined.column("actual")
    if version.task == "regression":
        columns[target] = actual.cast(pa.float64())
    else:
        columns[target] = actual.cast(pa.string())
    columns["time"] = joined.column("time")
    return pa.table(columns)


@dataclass(frozen=True)
class RetrainData:
    """What a retraining uses: the dataset version to train on and the held-out judge."""

    train_ref: str
    holdout_ref: str
    fresh_rows: int
    holdout_rows: int
    parts: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _cut(table: pa.Table, holdout: float, seed: int) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    n = table.num_rows
    order = rng.permutation(n)
    k = max(1, round(n * holdout))
    held = np.sort(order[:k])
    kept = np.sort(order[k:])
    return table.take(pa.array(kept)), table.take(pa.array(held))


def _align(table: pa.Table, like: pa.Schema, target: str, regression: bool) -> pa.Table:
    """``table`` with ``like``'s columns, cast so the two can be stacked."""
    columns = {}
    for field in like:
        if field.name not in table.column_names:
            raise DataError(f"the reference data lacks the column {field.name!r}")
        column = table.column(field.name)
        if field.name == target and not regression:
            column = column.cast(pa.string())
        columns[field.name] = column.cast(field.type)
    return pa.table(columns)


def retraining_data(
    project: Project,
    champion: ModelVersionRecord,
    fresh: pa.Table,
    *,
    mode: Literal["reference+window", "window", "all"],
    holdout: float,
    seed: int,
    history: pa.Table | None = None,
) -> RetrainData:
    """Version the rows a challenger trains on, and the held-out rows that judge it.

    ``fresh`` are labelled served rows (see :func:`labelled_rows`), cut into a
    part to train on and ``holdout``. ``window`` trains on the fresh part
    alone; ``reference+window`` adds the champion's own dataset; ``all`` adds
    ``history`` (every labelled row logged) as well.

    Raises:
        DataError: too few fresh rows to hold some out.
    """
    if fresh.num_rows < 2:
        raise DataError(f"{fresh.num_rows} fresh labelled rows: a retraining needs at least 2")
    target = str(champion.signature.get("target"))
    regression = champion.task == "regression"
    features = fresh.drop_columns([c for c in ("time",) if c in fresh.column_names])
    train_part, held = _cut(features, holdout, seed)
    parts = [f"{train_part.num_rows} fresh labelled rows from the prediction log"]
    stacked = [train_part]
    if mode in ("reference+window", "all"):
        reference = project.datasets.load(str(champion.lineage["dataset"]))
        stacked.insert(0, _align(reference, train_part.schema, target, regression))
        parts.insert(0, f"{champion.lineage['dataset']} ({reference.num_rows} rows)")
    if mode == "all" and history is not None and history.num_rows:
        older = history.drop_columns([c for c in ("time",) if c in history.column_names])
        held_keys = set(map(tuple, held.to_pandas().itertuples(index=False)))
        rows = older.to_pandas()
        mask = [tuple(r) not in held_keys for r in rows.itertuples(index=False)]
        older = older.filter(pa.array(mask))
        stacked.insert(1, _align(older, train_part.schema, target, regression))
        parts.insert(1, f"{older.num_rows} earlier labelled rows")
    train_table = pa.concat_tables(stacked)
    base = champion.lineage["dataset"].split("@")[0]
    trained = project.datasets.add(train_table, name=f"{base}-retrain", target=target)
    judged = project.datasets.add(held, name=f"{base}-holdout", target=target)
    project.store.record_event(
        "dataset.lineage",
        "dataset",
        trained.version.ref,
        actor=project.actor,
        reason="made by the loop for a retraining",
        details={"parts": parts, "holdout": judged.version.ref, "champion": champion.ref},
    )
    return RetrainData(
        trained.version.ref, judged.version.ref, fresh.num_rows, held.num_rows, parts
    )
