"""The two sides of a monitoring run, as plain arrays.

:class:`Window` is the current side: the rows of a CSV/Parquet file (scored
now by the model) or a slice of the prediction log (with the labels that
arrived later as feedback, joined by request id). :class:`Reference` is the
other side: the training rows of the version's dataset, and the model's
answers on the validation split with the truth, recorded at registration.

The log holds rows of several sources: ``serve`` (the answers of the served
version), ``batch`` (rows scored by ``mlcycle score``), ``shadow`` (a
version's answers to mirrored traffic, never returned to anyone) and
``error`` (requests that failed). A window reads the version's ``serve`` and
``batch`` rows (:data:`SOURCES`); shadow and error rows are never counted as
its answers.

An input absent from the data altogether is read as missing in every row
(and reported as such, see :mod:`mlcycle.monitor._quality`), so the rest of
the report can still be computed.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.errors import DataError, NotFoundError
from mlcycle.monitor._performance import class_names, join_feedback
from mlcycle.predictions import INPUT_PREFIX, PredictionLog, resolve_references
from mlcycle.registry import OODDetector, model_inputs

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.registry import Predictor
    from mlcycle.store import ModelVersionRecord

__all__ = ["SOURCES", "Reference", "Source", "Window", "load_reference", "read_window"]

Array = np.ndarray[Any, Any]
Source = Literal["serve", "batch", "all"]
# The log's sources whose rows are the monitored version's own answers.
SOURCES: dict[str, tuple[str, ...]] = {
    "serve": ("serve",),
    "batch": ("batch",),
    "all": ("serve", "batch"),
}


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
    ood_logged: Array | None = None  # bool per row: the log holds its flag (batch rows have none)
    absent: list[str] = field(default_factory=list)  # inputs not in the data at all
    # rows left out because their inputs could not be read (a batch input gone or changed)
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        for array in (*self.inputs.values(), self.labels, self.probabilities, self.values):
            if array is not None:
                return len(array)
        return 0

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
            pick(self.ood_logged),
            list(self.absent),
            list(self.notes),
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


def read_table_file(path: Path, what: str = "current data") -> pa.Table:
    """A CSV or Parquet file (or folder of Parquet) as a table; ``what`` names it in errors.

    Raises:
        DataError: no such file, an empty or unreadable one, a repeated column.
    """
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    where = f"{what} {str(path)!r}"
    if not path.exists():
        raise DataError(f"{where}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq") and not path.is_dir():
        raise DataError(f"{where}: expected a .csv or .parquet file")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{where}: the file is empty (0 bytes); expected a header and rows")
    try:
        table = pcsv.read_csv(path) if suffix == ".csv" else pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise DataError(f"{where}: not readable as {kind}: {reason}") from None
    repeated = [(name, k) for name, k in Counter(table.column_names).items() if k > 1]
    if repeated:
        name, k = repeated[0]
        raise DataError(f"{where}: column {name!r} appears {k} times; expected each column once")
    return table


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


def _actual(values: Any, regression: bool, classes: list[str] | None = None) -> Array:
    """True labels: floats for regression; else class names (``1.0`` is class ``'1'``), or None."""
    if regression:
        try:
            column = pa.array(values).cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            column = pa.array([_float_or_nan(v) for v in values], pa.float64())
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    labels = np.asarray([None if v is None else str(v) for v in values], dtype=object)
    return labels if classes is None else class_names(labels, classes)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _classes(version: ModelVersionRecord) -> list[str] | None:
    classes = version.signature.get("classes")
    return None if version.task == "regression" or not classes else [str(c) for c in classes]


def _fill_absent(table: pa.Table, version: ModelVersionRecord, names: list[str]) -> pa.Table:
    """``table`` with every input in ``names`` that it lacks added as a column of nulls."""
    kinds = {s["name"]: s["kind"] for s in version.signature["inputs"]}
    for name in names:
        if kinds[name] == "image":
            raise DataError(f"the current data lacks the image input {name!r}")
        kind = pa.string() if kinds[name] == "categorical" else pa.float64()
        table = table.append_column(name, pa.nulls(table.num_rows, kind))
    return table


def _file_window(
    path: Path, version: ModelVersionRecord, predictor: Predictor, extra_columns: list[str]
) -> Window:
    table = read_table_file(path)
    types = _types(version)
    names = [s["name"] for s in version.signature["inputs"]]
    absent = [n for n in names if n not in table.column_names]
    if table.num_rows == 0:
        raise NotFoundError(f"current data {str(path)!r} has no rows")
    table = _fill_absent(table, version, absent)
    # The model refuses values that are not finite; monitoring counts them as a data
    # quality finding (from ``inputs`` below) and scores those rows with them missing.
    model_rows = _finite_inputs(table.select(names))
    result = predictor.predict(model_rows)
    window = Window(
        source=str(path),
        inputs={n: as_array(table.column(n), c) for n, c in types.items()},
        labels=result.labels,
        probabilities=None if result.probabilities is None else result.probabilities.astype(float),
        values=result.values,
        absent=absent,
    )
    target = version.signature.get("target")
    regression = version.task == "regression"
    if target and target in table.column_names:
        window.actual = _actual(table.column(target).to_pylist(), regression, _classes(version))
        window.has_actual = np.asarray([v is not None for v in window.actual])
        if regression:
            window.has_actual &= ~np.isnan(window.actual.astype(np.float64))
    for name in ("time", "timestamp", *extra_columns):
        if name in table.column_names and name not in window.inputs:
            column = table.column(name)
            if name in ("time", "timestamp") and pa.types.is_timestamp(column.type):
                window.times = column.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
            else:
                window.extra[name] = as_array(column, categorical=True)
    window.feeds = predictor.feeds(model_rows)
    return window


def _finite_inputs(table: pa.Table) -> pa.Table:
    """``table`` with infinite numbers (and overflows of float32) as missing values."""

    limit = float(np.finfo(np.float32).max)
    columns = []
    for column in table.columns:
        if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
            values = column.cast(pa.float64())
            bad = pc.greater(pc.abs(values), limit)
            column = pc.if_else(bad, pa.scalar(None, pa.float64()), values)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _read_log(
    log: PredictionLog,
    version: ModelVersionRecord,
    sources: tuple[str, ...],
    since: datetime | None,
    last: int | None,
) -> pa.Table:
    """The version's rows of ``sources``, oldest first; the newest ``last`` of them together."""
    parts = [
        log.read(version.name, version=version.version, source=s, since=since, last=last)
        for s in sources
    ]
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return pa.table({})
    if len(parts) == 1:
        return parts[0]
    # the newest `last` of the union are among the newest `last` of each source
    table = pa.concat_tables(parts, promote_options="permissive").sort_by("time")
    return table if last is None else table.slice(max(0, table.num_rows - last))


def _log_window(
    project: Project,
    version: ModelVersionRecord,
    predictor: Predictor,
    since: timedelta | None,
    last: int | None,
    extra_columns: list[str],
    source: Source,
) -> Window:
    if source not in SOURCES:
        raise DataError(f"source {source!r}: expected one of {', '.join(SOURCES)}")
    cutoff = None if since is None else datetime.now(UTC) - since
    root = project.root / ".mlcycle" / "log"
    log = PredictionLog(root)
    try:
        # what this version answered in the window, read no further back than needed
        table = _read_log(log, version, SOURCES[source], cutoff, last)
        first = None
        if table.num_rows:
            first = pc.min(table.column("time")).as_py()
        feedback = log.read_feedback(since=first) if first is not None else pa.table({})
    finally:
        log.close()
    if table.num_rows == 0:
        what = "" if source == "all" else f" from {source}"
        raise NotFoundError(
            f"the prediction log of {version.name!r} has no rows{what} in this window"
        )
    # batch-scored rows point at their input file: read their inputs there, as the job fed them
    resolved = resolve_references(
        table,
        root,
        predictor.input_names,
        lambda raw: predictor.feeds(model_inputs(raw, predictor.signature)),
        text=[str(c["name"]) for c in version.signature.get("context") or ()],
    )
    table = resolved.table
    if table.num_rows == 0:
        raise NotFoundError(
            f"the prediction log of {version.name!r} has no rows whose inputs can be read "
            f"in this window: {'; '.join(resolved.notes)}"
        )
    types = _types(version)
    absent = [n for n in types if INPUT_PREFIX + n not in table.column_names]
    for name in absent:
        kind = pa.string() if types[name] else pa.float64()
        table = table.append_column(INPUT_PREFIX + name, pa.nulls(table.num_rows, kind))
    labels, probabilities, values = _outputs(table)
    window = Window(
        source="prediction log",
        inputs={n: as_array(table.column(INPUT_PREFIX + n), c) for n, c in types.items()},
        labels=labels,
        probabilities=probabilities,
        values=values,
        times=table.column("time").cast(pa.timestamp("us")).to_numpy(zero_copy_only=False),
        absent=absent,
        notes=list(resolved.notes),
    )
    for name in extra_columns:
        if INPUT_PREFIX + name in table.column_names:
            window.extra[name] = as_array(table.column(INPUT_PREFIX + name), categorical=True)
    if "ood" in table.column_names:
        flags = table.column("ood")
        window.ood_flags = np.asarray(
            flags.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool
        )
        window.ood_logged = np.asarray(flags.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if "ood_score" in table.column_names:
        window.ood_scores = as_array(table.column("ood_score"), categorical=False)
    if feedback.num_rows and "request_id" in feedback.column_names:
        joined = join_feedback(table.select(["request_id"]), feedback)
        if joined.num_rows:
            position = pc.index_in(table.column("request_id"), value_set=joined["request_id"])
            found = np.asarray(position.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            index = position.fill_null(0).to_numpy(zero_copy_only=False)
            truth = _actual(
                joined.column("actual").to_pylist(),
                version.task == "regression",
                _classes(version),
            )
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
    source: Source = "all",
) -> Window:
    """The current window: a file (scored now) or the version's rows of the prediction log."""
    if current is not None:
        return _file_window(Path(current), version, predictor, extra_columns)
    return _log_window(project, version, predictor, since, last, extra_columns, source)


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
        actual = _actual(
            answers.column("actual").to_pylist(), version.task == "regression", _classes(version)
        )
    else:  # registered before references were recorded: answer the validation rows now
        result = predictor.predict(validation.select(predictor.input_names))
        labels, values = result.labels, result.values
        probabilities = None if result.probabilities is None else result.probabilities.astype(float)
        target = str(version.signature.get("target"))
        actual = _actual(
            validation.column(target).to_pylist(), version.task == "regression", _classes(version)
        )
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
