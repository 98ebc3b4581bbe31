"""Global explanation: permutation importance of each raw input column, on the ONNX graph.

The importance of a column is how much the metric worsens on the test split
when that column's values are shuffled between rows (Breiman's permutation
importance, as scikit-learn's ``permutation_importance``), averaged over
``repeats`` shuffles. It needs only the version's ONNX graph, so every
registered version has one, compressed variants included. The signature has
one graph input per raw column (an image is one column), so the importance is
per column as the data has it, never per one-hot dimension.

The interval is a paired percentile bootstrap over the test rows: resample
``i`` draws the same rows for the unshuffled predictions and for every
shuffle (:func:`mlcycle.evaluate.draws` pairs them by seed), so the drop is
computed within each resample and the noise the two share cancels.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import NotFoundError, SpecError
from mlcycle.evaluate import default_metric, draws, point_metrics
from mlcycle.evaluate import metric as lookup_metric
from mlcycle.registry import Predictor
from mlcycle.registry._signature import true_targets

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = [
    "ColumnImportance",
    "ImportanceResult",
    "VersionData",
    "importance",
    "load_version",
]

DEFAULT_REPEATS = 5
DEFAULT_BOOT = 1000


@dataclass(frozen=True)
class VersionData:
    """What an explanation reads of a version: its record, files, signature and data splits."""

    record: ModelVersionRecord
    files: dict[str, bytes]
    signature: dict[str, Any]
    dataset: str
    splits: dict[str, pa.Table]

    @property
    def has_torch(self) -> bool:
        return "weights.safetensors" in self.files and "model.json" in self.files

    def predictor(self) -> Predictor:
        return Predictor(self.files["model.onnx"], self.signature, name=self.record.ref)


def load_version(project: Project, ref: str) -> VersionData:
    """Version ``ref`` (``NAME@VERSION`` or ``NAME@ALIAS``) with its dataset version's splits.

    Raises:
        NotFoundError: no such version, or it records no dataset version.
    """
    record = project.store.registry.get(ref)
    files = {path: project.artifacts.read_bytes(sha) for path, sha in record.files.items()}
    dataset = record.lineage.get("dataset")
    if not dataset:
        raise NotFoundError(f"{record.ref} records no dataset version: nothing to explain on")
    splits = project.datasets.load_split(dataset)
    return VersionData(record, files, json.loads(files["signature.json"]), dataset, splits)


@dataclass(frozen=True)
class ColumnImportance:
    """One raw column: the mean drop of the metric when it is shuffled, with its interval.

    ``importance`` is in the metric's units and positive when shuffling the
    column makes the model worse (whatever the metric's direction); ``std``
    is its spread over the repeats.
    """

    column: str
    kind: str
    importance: float
    low: float | None
    high: float | None
    std: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "importance": self.importance,
            "low": self.low,
            "high": self.high,
            "std": self.std,
        }


@dataclass(frozen=True)
class ImportanceResult:
    """Permutation importance of every input column of one version, most important first."""

    model: str
    dataset: str
    split: str
    rows: int
    metric: str
    higher_is_better: bool
    score: float
    repeats: int
    n_boot: int
    alpha: float
    seed: int
    columns: tuple[ColumnImportance, ...]

    @property
    def ranking(self) -> tuple[str, ...]:
        """The column names, most important first."""
        return tuple(c.column for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "permutation_importance",
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "rows": self.rows,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "score": self.score,
            "repeats": self.repeats,
            "n_boot": self.n_boot,
            "confidence": 1 - self.alpha,
            "seed": self.seed,
            "columns": [c.to_dict() for c in self.columns],
        }


def _scores(predictor: Predictor, feeds: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    answer = predictor.run(feeds)
    out = answer.values if predictor.task == "regression" else answer.probabilities
    assert out is not None
    return np.asarray(out, dtype=np.float64)


def importance(
    project: Project,
    ref: str,
    *,
    metric: str | None = None,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    n_boot: int = DEFAULT_BOOT,
    alpha: float = 0.05,
) -> ImportanceResult:
    """Permutation importance of each raw input column of version ``ref`` on its test split.

    Args:
        metric: any metric of the metric table for the version's task
            (default: accuracy, or rmse for regression).
        repeats: shuffles per column; the importance is their mean.
        seed: seeds the shuffles and the bootstrap.
        n_boot: bootstrap resamples of the test rows for the interval.
        alpha: 1 - confidence level of the interval.

    Raises:
        SpecError: an unknown metric (or one of the other task family),
            ``repeats`` or ``n_boot`` < 1.
        NotFoundError: no such version, or no dataset version recorded.

    Example (in a project where ``cancer`` is registered)::

        result = importance(project, "cancer@champion", metric="roc_auc")
        result.ranking[:3]   # ('worst_concave_points', 'worst_area', 'mean_concavity')
    """
    if repeats < 1:
        raise SpecError(f"repeats: {repeats} is not >= 1")
    if n_boot < 1:
        raise SpecError(f"n_boot: {n_boot} is not >= 1")
    if not 0 < alpha < 1:
        raise SpecError(f"alpha: {alpha} is not in (0, 1)")
    data = load_version(project, ref)
    task = data.signature["task"]
    name = metric if metric is not None else default_metric(task)
    found = lookup_metric(
        name, "regression" if task == "regression" else "classification", field="metric"
    )
    test = data.splits["test"]
    predictor = data.predictor()
    feeds = dict(predictor.feeds(test))
    y = true_targets(test, data.signature)
    classes = [str(c) for c in data.signature.get("classes") or []] or None
    threshold = data.record.metrics.get("threshold") if task == "binary" else None

    def measure(scores: np.ndarray[Any, Any]) -> tuple[float, np.ndarray[Any, Any]]:
        point = point_metrics(task, y, scores, classes, names=[name], threshold=threshold)[name]
        drawn = draws(name, y, scores, n_boot=n_boot, seed=seed, threshold=threshold)
        return (math.nan if point is None else float(point)), drawn

    base, base_draws = measure(_scores(predictor, feeds))
    rng = np.random.default_rng(seed)
    kinds = {spec["name"]: spec["kind"] for spec in data.signature["inputs"]}
    columns = []
    for column in predictor.input_names:
        drops, drop_draws = [], []
        for _ in range(repeats):
            shuffled = dict(feeds)
            shuffled[column] = feeds[column][rng.permutation(test.num_rows)]
            value, value_draws = measure(_scores(predictor, shuffled))
            drops.append(found.improvement(value, base))
            drop_draws.append(found.improvement(value_draws, base_draws))
        mean_draws = np.mean(drop_draws, axis=0)
        defined = mean_draws[np.isfinite(mean_draws)]
        low, high = (
            (float(q) for q in np.quantile(defined, [alpha / 2, 1 - alpha / 2]))
            if defined.size
            else (None, None)
        )
        columns.append(
            ColumnImportance(
                column=column,
                kind=kinds[column],
                importance=float(np.mean(drops)),
                low=low,
                high=high,
                std=float(np.std(drops)),
            )
        )
    columns.sort(key=lambda c: -c.importance if math.isfinite(c.importance) else math.inf)
    return ImportanceResult(
        model=data.record.ref,
        dataset=data.dataset,
        split="test",
        rows=test.num_rows,
        metric=name,
        higher_is_better=found.higher_is_better,
        score=base,
        repeats=repeats,
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
        columns=tuple(columns),
    )
