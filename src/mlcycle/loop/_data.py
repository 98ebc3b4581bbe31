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
from mlcycle.spec import SplitSpec

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = ["DataMode", "RetrainData", "labelled_rows", "retraining_data"]

DataMode = Literal["reference+window", "window", "all"]
# A challenger's data: the gate judges it on held-out fresh rows, so its own test
# split only needs rows for the parity check and the report; the rest trains.
SPLIT = SplitSpec(validation=0.15, test=0.05)


def labelled_rows(
    project: Project,
    version: ModelVersionRecord,
    *,
    since: datetime | None = None,
    versions: set[int] | None = None,
) -> pa.Table:
    """Served rows of ``version``'s model with their true label, oldest first.

    Columns: the model's inputs by their own names, the ``sensitive`` and
    ``id`` columns the requests carried (the signature's context), the
    target, and ``time``. ``since`` keeps rows logged at or after it;
    ``versions`` only rows those versions answered.
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
    for name in carried(version):
        if INPUT_PREFIX + name in joined.column_names:
            columns[name] = joined.column(INPUT_PREFIX + name).cast(pa.string())
    actual = joined.column("actual")
    if version.task == "regression":
        columns[target] = actual.cast(pa.float64())
    else:
        columns[target] = actual.cast(pa.string())
    columns["time"] = joined.column("time")
    return pa.table(columns)


def carried(version: ModelVersionRecord) -> dict[str, str]:
    """Context columns a loop dataset keeps, with their role: sensitive and id.

    (Timestamps stay in the log: the loop's rows are ordered by the log's own time.)
    """
    return {
        str(c["name"]): str(c["role"])
        for c in version.signature.get("context") or ()
        if c.get("role") in ("sensitive", "id")
    }


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


def _cut(table: pa.Table, k: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """``table`` cut at random into the rows kept and ``k`` rows held out."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(table.num_rows)
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


def _not_in(table: pa.Table, other: pa.Table) -> list[bool]:
    """Per row of ``table``: whether no row of ``other`` (same columns) equals it."""
    seen = set(map(tuple, other.to_pandas().itertuples(index=False)))
    return [tuple(r) not in seen for r in table.to_pandas().itertuples(index=False)]


def retraining_data(
    project: Project,
    champion: ModelVersionRecord,
    fresh: pa.Table,
    *,
    mode: DataMode,
    holdout: float,
    seed: int,
    history: pa.Table | None = None,
    earlier_holdout: str | None = None,
    max_holdout_rows: int | None = None,
) -> RetrainData:
    """Version the rows a challenger trains on, and the held-out rows that judge it.

    ``fresh`` are labelled served rows (see :func:`labelled_rows`), cut into a
    part to train on and ``holdout``. ``window`` trains on the fresh part
    alone; ``reference+window`` adds the champion's own dataset; ``all`` adds
    ``history`` (every labelled row logged) as well. ``earlier_holdout`` (a
    dataset version) holds rows earlier cycles held out, which no model trained
    on: they join this cycle's held-out rows, so the gate judges on more rows
    each cycle (the caller drops them when the concept changed), up to
    ``max_holdout_rows``: past that the oldest of them are released to training
    to make room for this cycle's held-out rows, so the rows that judge keep
    renewing.

    Raises:
        DataError: too few fresh rows to hold some out.
    """
    if fresh.num_rows < 2:
        raise DataError(f"{fresh.num_rows} fresh labelled rows: a retraining needs at least 2")
    target = str(champion.signature.get("target"))
    regression = champion.task == "regression"
    features = fresh.drop_columns([c for c in ("time",) if c in fresh.column_names])
    earlier = None
    if earlier_holdout is not None:
        # rows an earlier cycle held out stay out of training, whatever this cut does
        earlier = _align(
            project.datasets.load(earlier_holdout), features.schema, target, regression
        )
        features = features.filter(pa.array(_not_in(features, earlier)))
        if features.num_rows < 2:
            raise DataError(f"{features.num_rows} fresh labelled rows not held out before")
    k = max(1, round(features.num_rows * holdout))
    released = None
    if max_holdout_rows is not None and earlier is not None and earlier.num_rows:
        # A full pool renews itself: its oldest rows make room for this cycle's, so the
        # gate does not judge every challenger on the rows that chose the champion (the
        # champion's score there is biased upwards). Released rows go to training.
        drop = min(earlier.num_rows, max(0, earlier.num_rows + k - max_holdout_rows))
        if drop:
            released, earlier = earlier.slice(0, drop), earlier.slice(drop)
    if max_holdout_rows is not None:
        room = max_holdout_rows - (0 if earlier is None else earlier.num_rows)
        k = min(k, max(room, 1))
    train_part, held = _cut(features, k, seed)
    parts = [f"{train_part.num_rows} fresh labelled rows from the prediction log"]
    stacked = [train_part]
    if released is not None:
        stacked.append(released)
        parts.append(
            f"{released.num_rows} rows earlier cycles held out, released to make room in the "
            f"gate's {max_holdout_rows} rows for fresh ones"
        )
    if mode in ("reference+window", "all"):
        reference = project.datasets.load(str(champion.lineage["dataset"]))
        stacked.insert(0, _align(reference, train_part.schema, target, regression))
        parts.insert(0, f"{champion.lineage['dataset']} ({reference.num_rows} rows)")
    if earlier is not None:
        held = pa.concat_tables([earlier, held])
        parts.append(f"{earlier.num_rows} rows held out by earlier cycles kept for the gate")
    if mode == "all" and history is not None and history.num_rows:
        older = history.drop_columns([c for c in ("time",) if c in history.column_names])
        older = _align(older, train_part.schema, target, regression)
        older = older.filter(pa.array(_not_in(older, held)))  # nothing held out trains
        if released is not None:  # already stacked
            older = older.filter(pa.array(_not_in(older, released)))
        stacked.insert(1, older)
        parts.insert(1, f"{older.num_rows} earlier labelled rows")
    train_table = pa.concat_tables(stacked)
    # the loop's own datasets keep the original name: stream-retrain, not stream-retrain-retrain
    base = champion.lineage["dataset"].split("@")[0].removesuffix("-retrain")
    roles: Any = {c: r for c, r in carried(champion).items() if c in train_table.column_names}
    trained = project.datasets.add(
        train_table, name=f"{base}-retrain", target=target, roles=roles or None, split=SPLIT
    )
    judged = project.datasets.add(held, name=f"{base}-holdout", target=target, roles=roles or None)
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
