"""What the prediction log says about recent traffic: requests, rates, latency, errors.

A server logs each request as one batch of rows sharing its time and latency,
with the source ``serve`` (answered), ``error`` (failed), ``shadow`` (a
challenger's mirrored copy) or ``batch`` (a scoring job's chunk); see
:mod:`mlcycle.predictions._log`. :func:`recent_traffic` reads only the
segments written since the window began, only the four columns it needs, and
at most ``max_rows`` rows (newest first), so its cost is the window's, not the
log's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["MAX_ROWS", "RecentTraffic", "VersionTraffic", "recent_traffic"]

MAX_ROWS = 2_000_000
_COLUMNS = ["time", "version", "source", "latency_ms"]


@dataclass(frozen=True)
class VersionTraffic:
    """One model version's requests of one source over the window.

    ``latency_ms`` holds the 50th, 95th and 99th percentiles of the requests'
    latencies (one figure per request, however many rows it had).
    """

    model: str
    version: int
    source: str
    requests: int
    rows: int
    rate_per_s: float
    latency_ms: dict[str, float]


@dataclass
class RecentTraffic:
    """The window ``[since, now]``: per version and source, and requests per minute."""

    since: datetime
    now: datetime
    versions: list[VersionTraffic] = field(default_factory=list)
    # model -> "vN source" -> [(minute ISO, requests)]
    per_minute: dict[str, dict[str, list[tuple[str, int]]]] = field(default_factory=dict)
    truncated: bool = False  # more than max_rows rows: the oldest of the window were not read

    def error_rate(self, model: str, version: int) -> float | None:
        """Failed requests over answered and failed ones (None without either)."""
        counts = {
            v.source: v.requests for v in self.versions if v.model == model and v.version == version
        }
        total = counts.get("serve", 0) + counts.get("error", 0)
        return counts.get("error", 0) / total if total else None


def _segments(root: Path, since: datetime) -> list[tuple[str, Path]]:
    """``(model, segment)`` written at or after ``since``, newest first.

    A segment holds rows logged before it was written, so one written before
    ``since`` holds none of the window's; when it was written is its file's
    modification time (it is renamed into place once written). Not its name:
    the name is the writer's clock and its folder the rows' day, so a row
    logged before midnight and written after, or written late after a full
    disk, has a name that reads as earlier than it was written. A day folder
    before ``since``'s day holds only rows before the window.
    """
    folder = root / "predictions"
    if not folder.is_dir():
        return []
    day = f"date={since.astimezone(UTC):%Y-%m-%d}"
    cutoff = since.timestamp()
    found: list[tuple[float, str, Path]] = []
    for model in os.scandir(folder):
        for version in os.scandir(model.path) if model.is_dir() else ():
            for date in os.scandir(version.path) if version.is_dir() else ():
                if not date.is_dir() or date.name < day:
                    continue
                for entry in os.scandir(date.path):
                    if not entry.name.endswith(".parquet"):
                        continue
                    try:
                        written = entry.stat().st_mtime
                    except FileNotFoundError:  # removed while listed
                        continue
                    if written >= cutoff:
                        found.append((written, model.name, Path(entry.path)))
    found.sort(key=lambda f: f[0], reverse=True)
    return [(model, path) for _, model, path in found]


def recent_traffic(
    root: str | os.PathLike[str],
    since: datetime,
    *,
    now: datetime | None = None,
    max_rows: int = MAX_ROWS,
) -> RecentTraffic:
    """Requests logged under ``root`` (a log's folder) from ``since`` on, per version and source.

    Example:
        >>> import tempfile, numpy as np
        >>> from mlcycle.predictions import LoggedBatch, PredictionLog
        >>> root = tempfile.mkdtemp()
        >>> log = PredictionLog(root)
        >>> for ms in (2.0, 4.0):
        ...     log.append(LoggedBatch("m", 1, "serve", ["r"], {"x": np.array([1.0])}, ms))
        >>> log.close()
        >>> found = recent_traffic(root, datetime.now(UTC).replace(hour=0, minute=0))
        >>> [(v.source, v.requests, v.latency_ms["p50"]) for v in found.versions]
        [('serve', 2, 3.0)]
    """
    now = now or datetime.now(UTC)
    found = RecentTraffic(since, now)
    parts: list[pa.Table] = []
    rows = 0
    for model, path in _segments(Path(root), since):
        if rows >= max_rows:
            found.truncated = True
            break
        table = pq.read_table(path, columns=_COLUMNS)
        cutoff = pa.scalar(since, type=pa.timestamp("us", tz="UTC"))
        table = table.filter(pc.greater_equal(table.column("time"), cutoff))
        if table.num_rows:
            parts.append(table.append_column("model", pa.repeat(pa.scalar(model), table.num_rows)))
            rows += table.num_rows
    if not parts:
        return found
    logged = pa.concat_tables(parts, promote_options="permissive")
    # One request: the rows of one logged batch (the same model, version, source, time, latency).
    keys = ["model", "version", "source", "time", "latency_ms"]
    requests = logged.group_by(keys).aggregate([("version", "count")])
    seconds = max((now - since).total_seconds(), 1e-9)
    groups = requests.group_by(["model", "version", "source"]).aggregate(
        [("version_count", "sum"), ("version_count", "count")]
    )
    for g in groups.to_pylist():
        mask = pc.and_(
            pc.and_(
                pc.equal(requests.column("model"), g["model"]),
                pc.equal(requests.column("version"), g["version"]),
            ),
            pc.equal(requests.column("source"), g["source"]),
        )
        latency = requests.filter(mask).column("latency_ms").to_numpy()
        p50, p95, p99 = np.percentile(latency, [50, 95, 99]).tolist()
        found.versions.append(
            VersionTraffic(
                model=g["model"],
                version=int(g["version"]),
                source=g["source"],
                requests=int(g["version_count_count"]),
                rows=int(g["version_count_sum"]),
                rate_per_s=int(g["version_count_count"]) / seconds,
                latency_ms={"p50": p50, "p95": p95, "p99": p99},
            )
        )
    found.versions.sort(key=lambda v: (v.model, -v.version, v.source))
    minutes = requests.append_column(
        "minute", pc.floor_temporal(requests.column("time"), unit="minute")
    )
    per_minute = minutes.group_by(["model", "version", "source", "minute"]).aggregate(
        [("version", "count")]
    )
    series: dict[str, dict[str, list[tuple[str, int]]]] = {}
    for r in sorted(per_minute.to_pylist(), key=_minute_order):
        line = series.setdefault(r["model"], {}).setdefault(f"v{r['version']} {r['source']}", [])
        line.append((r["minute"].isoformat(), int(r["version_count"])))
    found.per_minute = series
    return found


def _minute_order(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["model"], row["version"], row["source"], row["minute"])
