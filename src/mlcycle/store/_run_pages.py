"""One page of runs at a time: filtered, sorted and counted in SQL, for the dashboard.

:meth:`RunPages.run_page` never reads more than ``limit`` runs, whatever the
store holds: the conditions on results (``test.accuracy > 0.9``, a logged
metric's last value) and the sort are SQL expressions, so 10,000 runs with
100 epochs each answer as fast as ten. Both SQLite and PostgreSQL read the
JSON summary with SQLAlchemy's JSON path operators.

Example:
    >>> from mlcycle.store import MetadataStore
    >>> store = MetadataStore("sqlite://")
    >>> for lr in (0.1, 0.01):
    ...     run = store.create_run(name=f"lr{lr}", params={"lr": lr}, actor="me")
    ...     store.log_metrics(run.id, [("loss", 0, 1.0), ("loss", 1, lr)])
    >>> page = store.run_page(where=[("loss", "<", 0.05)])
    >>> page.total, [r.run.name for r in page.rows]
    (1, ['lr0.01'])
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import Session

from mlcycle.errors import SpecError
from mlcycle.store import _tables as t
from mlcycle.store._records import RunRecord, RunStatus, utc
from mlcycle.store._run_records import run_record
from mlcycle.store._transactions import Transactions

__all__ = ["RUN_SORTS", "TEST_PREFIX", "RunPage", "RunPages", "RunRow"]

# The columns a page sorts by besides metrics (``test.NAME`` or a logged metric's name).
RUN_SORTS = ("started", "name", "experiment", "status", "dataset", "model", "duration")
TEST_PREFIX = "test."
# The tag training writes with the model's kind (mlp, cnn, ...).
MODEL_TAG = "model"
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class RunRow:
    """A run as a table row: the record (without artifacts) and what joins to it."""

    run: RunRecord
    dataset: str | None  # ``name@version``
    model: str | None


@dataclass(frozen=True)
class RunPage:
    rows: list[RunRow]
    total: int  # runs matching the filters, on every page together
    offset: int
    limit: int


class RunPages(Transactions):
    """Pages of runs for a table: SQL does the filtering, sorting, counting and slicing."""

    def run_page(
        self,
        *,
        experiment: str | None = None,
        status: RunStatus | None = None,
        ids: Collection[str] | None = None,
        tags: Mapping[str, str] | None = None,
        dataset: str | None = None,
        dataset_version: int | None = None,
        where: Sequence[tuple[str, str, float]] = (),
        sort: str = "started",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> RunPage:
        """The runs matching every filter, sorted, from ``offset``: at most ``limit`` of them.

        Args:
            ids: only these runs (the caller's pick, e.g. those whose heartbeat is stale).
            where: ``(metric, op, value)``: ``test.NAME`` (the run's test metric) or a
                logged metric (its value at the highest step); op one of > >= < <= == !=.
            sort: one of :data:`RUN_SORTS`, or a metric as in ``where``; runs without a
                value come last either way.

        Raises:
            SpecError: an unknown operator.
        """
        conditions: list[Any] = []
        if experiment is not None:
            conditions.append(t.Run.experiment == experiment)
        if status is not None:
            conditions.append(t.Run.status == status)
        if ids is not None:
            conditions.append(t.Run.id.in_(list(ids)))
        for key, value in (tags or {}).items():
            conditions.append(_tag(key) == value)
        if dataset is not None:
            versions = (
                select(t.DatasetVersion.id)
                .join(t.Dataset, t.Dataset.id == t.DatasetVersion.dataset_id)
                .where(t.Dataset.name == dataset)
            )
            if dataset_version is not None:
                versions = versions.where(t.DatasetVersion.version == dataset_version)
            conditions.append(t.Run.dataset_version_id.in_(versions))
        for _, op, _ in where:
            if op not in _OPERATORS:
                raise SpecError(f"operator {op!r}: expected one of {', '.join(_OPERATORS)}")
        wanted = [m for m, _, _ in where]
        if sort not in RUN_SORTS:
            wanted.append(sort)
        logged = [m for m in dict.fromkeys(wanted) if not m.startswith(TEST_PREFIX)]
        # With a logged metric, the total comes from a window count in the page's own query
        # (counting on its own would look every value up again); otherwise a plain count is
        # cheaper than a window, which holds every matching row before the page is cut.
        query = select(t.Run, func.count().over().label("total") if logged else literal(None))
        values: dict[str, Any] = {}
        if logged:
            # A logged metric's last value is a lookup per run: made once, in a subquery
            # that OFFSET 0 keeps PostgreSQL from inlining into the filter and the sort
            # (where it would be made again for each).
            last = (
                select(
                    t.Run.id.label("run_id"),
                    *(_metric(m).label(f"m{i}") for i, m in enumerate(logged)),
                )
                .where(*conditions)
                .offset(0)
                .subquery()
            )
            query = query.join(last, last.c.run_id == t.Run.id)
            values = {m: last.c[f"m{i}"] for i, m in enumerate(logged)}
        else:
            query = query.where(*conditions)
        for metric, op, threshold in where:
            query = query.where(_OPERATORS[op](values.get(metric, _metric(metric)), threshold))
        keys = [
            (k.desc() if descending else k.asc()).nulls_last()
            for k in self._sort_keys(sort, values)
        ]
        query = query.order_by(*keys, t.Run.created_at.desc(), t.Run.id)
        with self._read() as session:
            found = session.execute(query.offset(offset).limit(limit)).all()
            if found and logged:
                total = int(found[0][1] or 0)
            else:
                counted = select(func.count()).select_from(query.order_by(None).subquery())
                total = session.scalar(counted) or 0
            runs = [row[0] for row in found]
            return RunPage(rows=self._rows(session, runs), total=total, offset=offset, limit=limit)

    def last_metric_points(self, run_id: str, after: int = -1) -> list[tuple[str, int, float]]:
        """``(key, step, value)`` of a run logged at steps above ``after``, by key then step.

        What a page following a run in progress asks for: only what is new.
        """
        query = (
            select(t.Metric.key, t.Metric.step, t.Metric.value)
            .where(t.Metric.run_id == run_id, t.Metric.step > after)
            .order_by(t.Metric.key, t.Metric.step, t.Metric.id)
        )
        with self._read() as session:
            return [(k, int(s), float(v)) for k, s, v in session.execute(query)]

    def html_reports(self, limit: int = 500) -> list[dict[str, Any]]:
        """Every HTML page the project stored, newest first, with what it is about.

        Each: ``sha256``, ``created_at``, ``size``, and the records naming it
        (``runs``: ``(run id, run name, path)``, ``models``: ``(name, version, path)``,
        ``audits``: ``(name, version, kinds)``).
        """
        with self._read() as session:
            artifacts = session.scalars(
                select(t.Artifact)
                .where(t.Artifact.media_type == "text/html")
                .order_by(t.Artifact.created_at.desc())
                .limit(limit)
            ).all()
            shas = [a.sha256 for a in artifacts]
            runs: dict[str, list[tuple[str, str, str]]] = {}
            for sha, run_id, name, path in session.execute(
                select(t.RunArtifact.artifact_sha256, t.Run.id, t.Run.name, t.RunArtifact.path)
                .join(t.Run, t.Run.id == t.RunArtifact.run_id)
                .where(t.RunArtifact.artifact_sha256.in_(shas))
            ):
                runs.setdefault(sha, []).append((run_id, name, path))
            models: dict[str, list[tuple[str, int, str]]] = {}
            for sha, name, version, path in session.execute(
                select(
                    t.ModelFile.artifact_sha256,
                    t.RegisteredModel.name,
                    t.ModelVersion.version,
                    t.ModelFile.path,
                )
                .join(t.ModelVersion, t.ModelVersion.id == t.ModelFile.version_id)
                .join(t.RegisteredModel, t.RegisteredModel.id == t.ModelVersion.model_id)
                .where(t.ModelFile.artifact_sha256.in_(shas))
            ):
                models.setdefault(sha, []).append((name, version, path))
            audits: dict[str, list[tuple[str, int, str]]] = {}
            for report, name, version, kinds in session.execute(
                select(
                    t.ModelAudit.report_sha256,
                    t.RegisteredModel.name,
                    t.ModelVersion.version,
                    t.ModelAudit.kinds,
                )
                .join(t.ModelVersion, t.ModelVersion.id == t.ModelAudit.version_id)
                .join(t.RegisteredModel, t.RegisteredModel.id == t.ModelVersion.model_id)
                .where(t.ModelAudit.report_sha256.in_(shas))
            ):
                if report is not None:
                    audits.setdefault(report, []).append((name, version, kinds))
            return [
                {
                    "sha256": a.sha256,
                    "created_at": utc(a.created_at),
                    "size": a.size,
                    "runs": runs.get(a.sha256, []),
                    "models": models.get(a.sha256, []),
                    "audits": audits.get(a.sha256, []),
                }
                for a in artifacts
            ]

    def _sort_keys(self, sort: str, values: Mapping[str, Any]) -> list[Any]:
        if sort == "started":
            return [t.Run.created_at]
        if sort in ("name", "experiment", "status"):
            column: ColumnElement[Any] = getattr(t.Run, sort)
            return [column]
        if sort == "model":
            return [_tag(MODEL_TAG)]
        if sort == "dataset":
            version = t.Run.dataset_version_id
            return [
                select(t.Dataset.name)
                .select_from(t.DatasetVersion)
                .join(t.Dataset, t.Dataset.id == t.DatasetVersion.dataset_id)
                .where(t.DatasetVersion.id == version)
                .scalar_subquery(),
                select(t.DatasetVersion.version)
                .where(t.DatasetVersion.id == version)
                .scalar_subquery(),
            ]
        if sort == "duration":
            if self.backend == "sqlite":
                return [func.julianday(t.Run.ended_at) - func.julianday(t.Run.started_at)]
            return [func.extract("epoch", t.Run.ended_at - t.Run.started_at)]
        return [values.get(sort, _metric(sort))]

    def _rows(self, session: Session, runs: list[t.Run]) -> list[RunRow]:
        ids = [r.id for r in runs]
        tags: dict[str, dict[str, str]] = {}
        for run_id, key, value in session.execute(
            select(t.RunTag.run_id, t.RunTag.key, t.RunTag.value).where(t.RunTag.run_id.in_(ids))
        ):
            tags.setdefault(run_id, {})[key] = value
        versions = {r.dataset_version_id for r in runs if r.dataset_version_id is not None}
        refs = {
            vid: f"{name}@{version}"
            for vid, name, version in session.execute(
                select(t.DatasetVersion.id, t.Dataset.name, t.DatasetVersion.version)
                .join(t.Dataset, t.Dataset.id == t.DatasetVersion.dataset_id)
                .where(t.DatasetVersion.id.in_(versions))
            )
        }
        rows = []
        for r in runs:
            run_tags = tags.get(r.id, {})
            record = run_record(r, run_tags)
            dataset = refs.get(r.dataset_version_id) if r.dataset_version_id else None
            rows.append(RunRow(run=record, dataset=dataset, model=run_tags.get(MODEL_TAG)))
        return rows


def _tag(key: str) -> Any:
    return (
        select(t.RunTag.value)
        .where(t.RunTag.run_id == t.Run.id, t.RunTag.key == key)
        .scalar_subquery()
    )


def _metric(metric: str) -> Any:
    """A run's value of ``metric`` as SQL: ``test.NAME`` from its summary, else its last logged."""
    if metric.startswith(TEST_PREFIX):
        return t.Run.summary[("test", metric.removeprefix(TEST_PREFIX))].as_float()
    last = (
        select(t.Metric.value)
        .where(t.Metric.run_id == t.Run.id, t.Metric.key == metric)
        .order_by(t.Metric.step.desc(), t.Metric.id.desc())
        .limit(1)
    )
    return last.scalar_subquery()
