"""A monitoring run: a window of current data against the model's reference.

The reference is the training rows of the dataset version a model version
was trained on (from its lineage) and the model's own answers on them; the
current window is a file, or the prediction log of the served model (the
last N rows, or the rows since a moment). Feature drift and prediction drift
are tested with :func:`drift_report`; a finding is an alert, recorded as an
event, and the report is stored as an artifact. ONNX Runtime only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.errors import DataError, NotFoundError, SpecError
from mlcycle.monitor._report import ColumnType, DriftOptions, DriftReport, drift_report
from mlcycle.predictions import INPUT_PREFIX, PredictionLog
from mlcycle.registry import load

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["MonitorResult", "monitor", "parse_since"]

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> timedelta:
    """``30m``, ``1h``, ``2d`` → a duration.

    Example:
        >>> parse_since("90m")
        datetime.timedelta(seconds=5400)
    """
    match = _SINCE.match(text.strip())
    if not match:
        raise SpecError(f"--since {text!r}: expected a number and s, m, h or d (e.g. 1h)")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


@dataclass(frozen=True)
class MonitorResult:
    """What one monitoring run found."""

    model: str
    features: DriftReport
    prediction: DriftReport
    alerts: list[str]
    report_sha256: str

    @property
    def healthy(self) -> bool:
        return not self.alerts

    def to_dict(self) -> dict[str, Any]:
        features = self.features.to_dict()
        return {
            "model": self.model,
            "healthy": self.healthy,
            "alerts": self.alerts,
            "columns": features["columns"],
            "dataset": features["dataset"],
            "prediction": self.prediction.to_dict()["columns"][0],
            "report_sha256": self.report_sha256,
        }


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


def _window(log: pa.Table, since: timedelta | None, last: int | None) -> pa.Table:
    if log.num_rows == 0:
        return log
    log = (
        log.filter(pc.equal(log.column("source"), "serve")) if "source" in log.column_names else log
    )
    if since is not None:
        cutoff = pa.scalar(datetime.now(UTC) - since, type=pa.timestamp("us", tz="UTC"))
        log = log.filter(pc.greater_equal(log.column("time"), cutoff))
    if last is not None:
        log = log.slice(max(0, log.num_rows - last))
    return log


def monitor(
    project: Project,
    ref: str,
    *,
    current: str | Path | None = None,
    since: timedelta | None = None,
    last: int | None = None,
    options: DriftOptions | None = None,
) -> MonitorResult:
    """Test a window of current data for feature and prediction drift.

    Raises:
        NotFoundError: the model is unknown, or the window holds no rows.
        DataError: the current data lacks a model input.
    """
    version = project.store.registry.get(ref)
    predictor = load(version.ref, project=project)
    inputs = [s for s in version.signature["inputs"] if s["kind"] != "image"]
    names = [s["name"] for s in inputs]
    types: dict[str, ColumnType] = {
        s["name"]: ("categorical" if s["kind"] == "categorical" else "numeric") for s in inputs
    }
    dataset = project.datasets.get(str(version.lineage["dataset"]))
    reference_table = project.datasets.load_split(dataset)["train"]

    if current is not None:
        table = _read_file(Path(current))
        missing = [n for n in names if n not in table.column_names]
        if missing:
            raise DataError(f"current data lacks the model input {missing[0]!r}")
        current_columns = {n: table.column(n) for n in names}
        predictions = predictor.predict(table.select(names))
    else:
        log = PredictionLog(project.root / ".mlcycle" / "log")
        try:
            table = _window(log.read(version.name), since, last)
        finally:
            log.close()
        if table.num_rows == 0:
            raise NotFoundError(
                f"the prediction log of {version.name!r} has no rows in this window"
            )
        current_columns = {n: table.column(INPUT_PREFIX + n) for n in names}
        predictions = None

    def as_array(column: Any, kind: str) -> np.ndarray[Any, Any]:
        if kind == "categorical":
            return np.asarray(column.cast(pa.string()).to_pylist(), dtype=object)
        return np.asarray(
            column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )

    reference = {n: as_array(reference_table.column(n), types[n]) for n in names}
    now = {n: as_array(current_columns[n], types[n]) for n in names}
    features = drift_report(reference, now, column_types=types, options=options)

    reference_out = predictor.predict(reference_table.select(names))
    if version.task == "regression":
        ref_pred = np.asarray(reference_out.values, dtype=np.float64)
        if predictions is not None:
            cur_pred = np.asarray(predictions.values, dtype=np.float64)
        else:
            cur_pred = np.asarray(
                table.column("value").to_numpy(zero_copy_only=False), dtype=np.float64
            )
        kind: ColumnType = "numeric"
    else:
        ref_pred = np.asarray(reference_out.labels, dtype=object)
        cur_pred = (
            np.asarray(predictions.labels, dtype=object)
            if predictions is not None
            else np.asarray(table.column("label").to_pylist(), dtype=object)
        )
        kind = "categorical"
    prediction = drift_report(
        {"prediction": ref_pred},
        {"prediction": cur_pred},
        column_types={"prediction": kind},
        options=options,
    )

    alerts = []
    if features.drift:
        alerts.append(
            f"dataset drift: {len(features.drifted_columns)} of {len(features.columns)} "
            f"inputs drifted ({', '.join(features.drifted_columns[:5])})"
        )
    elif features.drifted_columns:
        alerts.append(f"feature drift in {', '.join(features.drifted_columns[:5])}")
    if prediction.drift:
        alerts.append("prediction drift: the distribution of the model's answers moved")
    result_data = {
        "model": version.ref,
        "at": datetime.now(UTC).isoformat(),
        "window": {
            "current": str(current) if current else None,
            "last": last,
            "since_s": since.total_seconds() if since else None,
        },
        "features": features.to_dict(),
        "prediction": prediction.to_dict(),
        "alerts": alerts,
    }
    sha = project.artifacts.put_bytes(
        json.dumps(result_data, default=str).encode(), "application/json"
    ).sha256
    project.store.record_event(
        "monitor.report",
        "model",
        version.name,
        actor=project.actor,
        details={"version": version.version, "report": sha, "alerts": alerts},
    )
    for alert in alerts:
        project.store.record_event(
            "monitor.alert",
            "model",
            version.name,
            actor=project.actor,
            reason=alert,
            details={"version": version.version, "report": sha},
        )
    return MonitorResult(version.ref, features, prediction, alerts, sha)
