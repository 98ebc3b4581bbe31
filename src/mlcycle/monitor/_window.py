"""The two sides of a monitoring run, as plain arrays.

:class:`Window` is the current side: the rows of a CSV/Parquet file (scored
now by the model) or a slice of the prediction log (with the labels that
arrived later as feedback, joined by request id). :class:`Reference` is the
other side: the training rows of the version's dataset, and the model's
answers on the validation split with the truth, recorded at registration.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.errors import DataError, NotFoundError
from mlcycle.monitor._ood import OODDetector
from mlcycle.monitor._performance import join_feedback
from mlcycle.predictions import INPUT_PREFIX, PredictionLog

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.registry import Predictor
    from mlcycle.store import ModelVersionRecord

__all__ = ["Reference", "Window", "load_reference", "read_window"]

Array = np.ndarray[Any, Any]


def as_array(column: Any, categorical: bool) -> Array:
    """A pyarrow column as float64 (numeric) or an object array of strings."""
    if categorical:
        return np.asarray(column.cast(pa.string()).to_pylist(), dtype=object)
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


@dataclass
class Window:
    """The current rows: inputs, the model's answers, and the truth where known."""

    source: str
    inputs: dict[str, Array]
    labels: Array | None = None
    probabilities: Array | None = None
    values: Array | None = None
    actual: Array | None = None  # object (classes) or float64; None where no truth is known
    has_actual: Array | None = None  # bool per row
    times: Array | None = None  # datetime64[us], or None (row order is time order)
    extra: dict[str, Array] = field(default_factory=dict)
    ood_flags: Array | None = None  # flags logged by the server, when it scored them
    ood_scores: Array | None = None
    feeds: dict[str, Array] | None = None  # the graph inputs (file windows), for the OOD score

    @property
    def n(self) -> int:
        return len(next(iter(self.inputs.values()))) if self.inputs else 0

    @property
    def n_labelled(self) -> int:
        return 0 if self.has_actual is None else int(self.has_actual.sum())

    def take(self, index: Array) -> Window:
        """The rows at ``index`` (a sub-window)."""

        def pick(a: Array | None) -> Array | None:
            return None if a is None else a[index]

        return Window(
            self.source,
            {k: v[index] for k, v in self.inputs.items()},
            pick(self.labels),
            pick(self.probabilities),
            pick(self.values),
            pick(self.actual),
            pick(self.has_actual),
            pick(self.times),
            {k: v[index] for k, v in self.extra.items()},
            pick(self.ood_flags),
            pick(self.ood_scores),
            None if self.feeds is None else {k: v[index] for k, v in self.feeds.items()},
        )


@dataclass
class Reference:
    """Training inputs, and the model's validation answers with the truth."""

    inputs: dict[str, Array]
    labels: Array | None
    probabilities: Array | None
    values: Array | None
    actual: Array
    validation: pa.Table  # the validation split, row-aligned with the answers
    ood: OODDetector | None
    test_metrics: dict[str, Any]


def _read_file(path: Path) -> pa.Table:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if not path.exists():
        raise DataError(f"current data {str(path)!r}: no such file")
    if path.suffix.lower() == ".csv":
        return pcsv.read_csv(path)
    if path.suffix.lower() in (".parquet", ".pq") or path.is_dir():
        return pq.read_table(path)
    raise DataError(f"current data {str(path)!r}: expected a .csv or .parquet file")


def _outputs(table: pa.Table) -> tuple[Array | None, Array | None, Array | None]:
    labels = probabilities = values = None
    if "label" in table.column_names:
        labels = np.asarray(table.column("label").cast(pa.string()).to_pylist(), dtype=object)
    if "probabilities" in table.column_names:
        column = table.column("probabilities").combine_chunks()
        width = column.type.list_size
        probabilities = (
            column.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, width)
        )
    if "value" in table.column_names:
        values = as_array(table.column("value"), categorical=False)
    return labels, probabilities, values


def _types(version: ModelVersionRecord) -> dict[str, bool]:
    """Input name → categorical?, for the tabular inputs (images are not drift-tested)."""
    return {
        s["name"]: s["kind"] == "categorical"
        for s in version.signature["inputs"]
        if s["kind"] != "image"
    }


def _actual(values: Any, regression: bool) -> Array:
    if regression:
        return np.asarray(
            pa.array(values).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
    return np.asarray([None if v is None else str(v) for v in values], dtype=object)


def _file_window(
    path: Path, version: ModelVersionRecord, predictor: Predictor, extra_columns: list[str]
) -> Window:
    table = _read_file(path)
    types = _types(version)
    names = [s["name"] for s in version.signature["inputs"]]
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise DataError(f"current data {str(path)!r} lacks the model input {missing[0]!r}")
    if table.num_rows == 0:
        raise NotFoundError(f"current data {str(path)!r} has no rows")
    result = predictor.predict(table.select(names))
    window = Window(
        source=str(path),
        inputs={n: as_array(table.column(n), c) for n, c in types.items()},
        labels=result.labels,
        probabilities=None if result.probabilities is None else result.probabilities.astype(float),
        values=result.values,
    )
    target = version.signature.get("target")
    regression = version.task == "regression"
    if target and target in table.column_names:
        window.actual = _actual(table.column(target).to_pylist(), regression)
        window.has_actual = np.asarray([v is not None for v in table.column(target).to_pylist()])
        if regression:
            window.has_actual &= ~np.isnan(window.actual.astype(np.float64))
    for name in ("time", "timestamp", *extra_columns):
        if name in table.column_names and name not in window.inputs:
            column = table.column(name)
            if name in ("time", "timestamp") and pa.types.is_timestamp(column.type):
                window.times = column.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
            else:
                window.extra[name] = as_array(column, categorical=True)
    window.feeds = predictor.feeds(table.select(names))
    return window


def _log_window(
    project: Project,
    version: ModelVersionRecord,
    since: timedelta | None,
    last: int | None,
    extra_columns: list[str],
) -> Window:
    cutoff = None if since is None else datetime.now(UTC) - since
    log = PredictionLog(project.root / ".mlcycle" / "log")
    try:
        # what this version answered in the window, read no further back than needed
        table = log.read(
            version.name, version=version.version, source="serve", since=cutoff, last=last
        )
        first = None
        if table.num_rows:
            first = pc.min(table.column("time")).as_py()
        feedback = log.read_feedback(since=first) if first is not None else pa.table({})
    finally:
        log.close()
    if table.num_rows == 0:
        raise NotFoundError(f"the prediction log of {version.name!r} has no rows in this window")
    types = _types(version)
    absent = [n for n in types if INPUT_PREFIX + n not in table.column_names]
    if absent:
        raise DataError(f"the prediction log of {version.name!r} lacks the input {absent[0]!r}")
    labels, probabilities, values = _outputs(table)
    window = Window(
        source="prediction log",
        inputs={n: as_array(table.column(INPUT_PREFIX + n), c) for n, c in types.items()},
        labels=labels,
        probabilities=probabilities,
        values=values,
        times=table.column("time").cast(pa.timestamp("us")).to_numpy(zero_copy_only=False),
    )
    for name in extra_columns:
        if INPUT_PREFIX + name in table.column_names:
            window.extra[name] = as_array(table.column(INPUT_PREFIX + name), categorical=True)
    if "ood" in table.column_names:
        window.ood_flags = np.asarray(
            table.column("ood").fill_null(False).to_numpy(zero_copy_only=False), dtype=bool
        )
    if "ood_score" in table.column_names:
        window.ood_scores = as_array(table.column("ood_score"), categorical=False)
    if feedback.num_rows and "request_id" in feedback.column_names:
        joined = join_feedback(table.select(["request_id"]), feedback)
        if joined.num_rows:
            position = pc.index_in(table.column("request_id"), value_set=joined["request_id"])
            found = np.asarray(position.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            index = position.fill_null(0).to_numpy(zero_copy_only=False)
            truth = _actual(joined.column("actual").to_pylist(), version.task == "regression")
            missing = None if truth.dtype == object else np.nan
            window.actual = np.asarray(np.where(found, truth[index], missing))
            window.has_actual = found
    return window


def read_window(
    project: Project,
    version: ModelVersionRecord,
    predictor: Predictor,
    *,
    current: str | Path | None,
    since: timedelta | None,
    last: int | None,
    extra_columns: list[str],
) -> Window:
    """The current window: a file (scored now) or the served rows of the prediction log."""
    if current is not None:
        return _file_window(Path(current), version, predictor, extra_columns)
    return _log_window(project, version, since, last, extra_columns)


def load_reference(
    project: Project, version: ModelVersionRecord, predictor: Predictor
) -> Reference:
    """The training inputs and the recorded validation answers of ``version``."""
    import pyarrow.parquet as pq

    dataset = project.datasets.get(str(version.lineage["dataset"]))
    splits = project.datasets.load_split(dataset)
    train, validation = splits["train"], splits["validation"]
    types = _types(version)
    if "reference.parquet" in version.files:
        answers = pq.read_table(
            io.BytesIO(project.artifacts.read_bytes(version.files["reference.parquet"]))
        )
        labels, probabilities, values = _outputs(answers)
        actual = _actual(answers.column("actual").to_pylist(), version.task == "regression")
    else:  # registered before references were recorded: answer the validation rows now
        result = predictor.predict(validation.select(predictor.input_names))
        labels, values = result.labels, result.values
        probabilities = None if result.probabilities is None else result.probabilities.astype(float)
        target = str(version.signature.get("target"))
        actual = _actual(validation.column(target).to_pylist(), version.task == "regression")
    ood = None
    if "ood.json" in version.files:
        ood = OODDetector.from_dict(
            json.loads(project.artifacts.read_bytes(version.files["ood.json"]))
        )
    return Reference(
        inputs={n: as_array(train.column(n), c) for n, c in types.items()},
        labels=labels,
        probabilities=probabilities,
        values=values,
        actual=actual,
        validation=validation,
        ood=ood,
        test_metrics=dict(version.metrics.get("test", {})),
    )
