"""The runs pages: the table (filters, sort, pages from SQL), one run, runs compared."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcycle._run_query import parse_where
from mlcycle.errors import MlcycleError, SpecError
from mlcycle.store import RUN_SORTS, RunPage, RunRecord, check_name

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = [
    "PAGE_SIZE",
    "RunFilters",
    "compare",
    "curves",
    "flatten",
    "headline_metrics",
    "positive",
    "query_runs",
    "run_lineage",
]

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
STATUSES = ("running", "finished", "failed", "killed", "pruned", "interrupted")
# At most this many runs compared at once: their curves are all drawn.
MAX_COMPARED = 10
HEADLINE = 3


@dataclass
class RunFilters:
    """The runs table's query string, read and checked: what the page shows and links keep."""

    experiment: str = ""
    status: str = ""
    tag: str = ""
    dataset: str = ""
    where: str = ""
    sort: str = "started"
    order: str = "desc"
    page: int = 1
    size: int = PAGE_SIZE
    errors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, params: Mapping[str, str]) -> RunFilters:
        f = cls(
            experiment=params.get("experiment", "").strip(),
            status=params.get("status", "").strip(),
            tag=params.get("tag", "").strip(),
            dataset=params.get("dataset", "").strip(),
            where=params.get("where", "").strip(),
            sort=params.get("sort", "").strip() or "started",
            order="asc" if params.get("order") == "asc" else "desc",
        )
        f.page = positive(params.get("page"), 1)
        f.size = min(positive(params.get("size"), PAGE_SIZE), MAX_PAGE_SIZE)
        if f.status and f.status not in STATUSES:
            f.errors.append(f"status {f.status!r}: expected one of {', '.join(STATUSES)}")
            f.status = ""
        return f

    def query(self, **change: Any) -> str:
        """This query string with ``change`` applied (for links: sort, next page)."""
        from urllib.parse import urlencode

        values = {
            "experiment": self.experiment,
            "status": self.status,
            "tag": self.tag,
            "dataset": self.dataset,
            "where": self.where,
            "sort": self.sort,
            "order": self.order,
            "page": self.page,
            "size": self.size,
        }
        values.update(change)
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def query_runs(project: Project, f: RunFilters) -> RunPage | None:
    """The page of runs ``f`` asks for (None when a filter is malformed: ``f.errors`` says why)."""
    tags: dict[str, str] = {}
    if f.tag:
        key, sep, value = f.tag.partition("=")
        try:
            if not sep:
                raise SpecError(f"tag {f.tag!r}: expected KEY=VALUE, e.g. team=fraud")
            tags[check_name(key.strip(), "tag key")] = value.strip()
        except SpecError as exc:
            f.errors.append(str(exc))
    where: list[tuple[str, str, float]] = []
    for expression in filter(None, (e.strip() for e in f.where.split(","))):
        try:
            c = parse_where(expression)
            where.append((c.metric, c.op, c.value))
        except SpecError as exc:
            f.errors.append(str(exc).removeprefix("--where "))
    dataset, version = (f.dataset or None), None
    if dataset and "@" in dataset:
        name, _, number = dataset.partition("@")
        if not number.isdigit():
            f.errors.append(f"dataset {dataset!r}: expected NAME or NAME@VERSION")
        dataset, version = name, int(number) if number.isdigit() else None
    if f.sort not in RUN_SORTS and not _metric_name(f.sort):
        f.errors.append(f"sort {f.sort!r}: a column ({', '.join(RUN_SORTS)}) or a metric")
    if f.errors:
        return None
    ids = None
    status = f.status or None
    if status in ("running", "interrupted"):
        # Only running runs can be interrupted (their heartbeat stopped); there are few.
        running = project.runs.list(status="running", limit=None)
        ids = [r.id for r in running if project.runs.state(r) == status]
    try:
        return project.store.run_page(
            experiment=f.experiment or None,
            status=None if ids is not None else status,  # type: ignore[arg-type]
            ids=ids,
            tags=tags,
            dataset=dataset,
            dataset_version=version,
            where=where,
            sort=f.sort,
            descending=f.order == "desc",
            offset=(f.page - 1) * f.size,
            limit=f.size,
        )
    except MlcycleError as exc:
        f.errors.append(str(exc))
        return None


def headline_metrics(runs: Sequence[RunRecord], sort: str) -> list[str]:
    """The test metrics the table shows: the sorted-by one, then those the runs report first."""
    names = [sort.removeprefix("test.")] if sort.startswith("test.") else []
    for r in runs:
        for key in r.summary.get("test_ci") or r.summary.get("test") or {}:
            if key not in names and len(names) < HEADLINE:
                names.append(key)
    return names


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested parameters as ``a.b.c: value`` rows."""
    if isinstance(value, Mapping) and value:
        rows: dict[str, Any] = {}
        for key, inner in value.items():
            rows.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return {prefix: value}


def curves(project: Project, run_id: str, after: int = -1) -> dict[str, list[list[float]]]:
    """A run's logged metrics from step ``after`` on: ``{key: [[step, value], ...]}``."""
    out: dict[str, list[list[float]]] = {}
    for key, step, value in project.store.last_metric_points(run_id, after):
        out.setdefault(key, []).append([step, None if math.isnan(value) else value])  # type: ignore[list-item]
    return out


def compare(project: Project, ids: Sequence[str]) -> dict[str, Any]:
    """Runs side by side: parameters that differ, test metrics (with intervals), curves."""
    if not ids:
        raise SpecError("compare: pick runs in the runs table (the boxes on the left)")
    if len(ids) > MAX_COMPARED:
        raise SpecError(f"compare: at most {MAX_COMPARED} runs at once, got {len(ids)}")
    runs = [project.runs.get(i) for i in ids]
    params = [flatten(r.params) for r in runs]
    keys = list(dict.fromkeys(k for p in params for k in p))
    differ = {
        k: [p.get(k) for p in params] for k in keys if len({repr(p.get(k)) for p in params}) > 1
    }
    metrics = list(dict.fromkeys(k for r in runs for k in (r.summary.get("test") or {})))
    table = {
        m: [
            {
                "value": (r.summary.get("test") or {}).get(m),
                "ci": (r.summary.get("test_ci") or {}).get(m),
            }
            for r in runs
        ]
        for m in metrics
    }
    return {
        "runs": runs,
        "names": {r.id: r.name for r in runs},
        "params": differ,
        "same": len(keys) - len(differ),
        "metrics": table,
        "curves": {r.id: curves(project, r.id) for r in runs},
    }


def run_lineage(project: Project, run: RunRecord) -> dict[str, Any]:
    """Where a run comes from and what came of it: dataset, parent, children, model versions."""
    dataset = None
    if run.dataset_version_id is not None:
        dataset = project.store.get_dataset_version_by_id(run.dataset_version_id)
    children = project.store.list_runs(parent=run.id, limit=200)
    versions = [
        v
        for m in project.store.registry.list_models()
        for v in project.store.registry.list_versions(m.name)
        if v.run_id == run.id
    ]
    parent = project.runs.get(run.parent_run_id) if run.parent_run_id else None
    return {"dataset": dataset, "parent": parent, "children": children, "versions": versions}


def _metric_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "._-/" for c in name)


def positive(raw: str | None, default: int) -> int:
    """A query string's whole number of at least 1 (``default`` when absent or not one)."""
    try:
        value = int(raw) if raw else default
    except ValueError:
        return default
    return value if value >= 1 else default
