"""The data behind the report's plots: ROC, precision-recall, reliability, learning curves.

Curves come from scikit-learn (``roc_curve``, ``precision_recall_curve``,
``calibration_curve``) and are thinned to a few thousand points, which no
reader can tell apart on screen but which keeps a report on a million rows
a few megabytes. The area in a legend is the metric table's ROC AUC (the
ranking kernel the record uses), not a second computation of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle.evaluate._ranking import Ranking

__all__ = ["learning_curve_groups", "ranking_curves", "reliability", "thin"]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

MAX_POINTS = 2000
_SPLITS = ("train", "validation", "valid", "val", "test")


def thin(*arrays: FloatArray, max_points: int = MAX_POINTS) -> list[list[float]]:
    """Evenly spaced points of equally long arrays, first and last kept, as lists."""
    size = arrays[0].size
    if size <= max_points:
        return [a.tolist() for a in arrays]
    keep = np.unique(np.linspace(0, size - 1, max_points).round().astype(np.intp))
    return [a[keep].tolist() for a in arrays]


def ranking_curves(y: IntArray, p: FloatArray, names: Sequence[str]) -> list[dict[str, Any]]:
    from sklearn.metrics import precision_recall_curve, roc_curve  # 1 s to import: when drawn

    """One-vs-rest ROC and precision-recall curves per class (binary: the positive class only).

    Classes absent from ``y``, or making up all of it, have no ROC curve and
    are left out.
    """
    out: list[dict[str, Any]] = []
    ranking = Ranking(p)
    for c in ranking.summarised:
        positive = (y == c).astype(np.intp)
        if positive.min() == positive.max():
            continue
        fpr, tpr, _ = roc_curve(positive, p[:, c])
        precision, recall, _ = precision_recall_curve(positive, p[:, c])
        mass = positive[None].astype(np.float64)
        fpr_t, tpr_t = thin(fpr, tpr)
        recall_t, precision_t = thin(recall, precision)
        out.append(
            {
                "name": names[c],
                "fpr": fpr_t,
                "tpr": tpr_t,
                "roc_auc": float(ranking.roc_auc(c, mass, 1.0 - mass)[0]),
                "recall": recall_t,
                "precision": precision_t,
                "prevalence": float(positive.mean()),
            }
        )
    return out


def reliability(
    y: IntArray, p: FloatArray, names: Sequence[str], n_bins: int = 10
) -> dict[str, Any]:
    """Reliability diagram data: mean predicted probability vs observed frequency per bin.

    Binary problems show ``P(classes[1])`` against how often the row is of
    that class; multiclass problems show the top-label confidence against
    how often the argmax is right (the quantity the ECE summarises).
    """
    from sklearn.calibration import calibration_curve

    if len(names) == 2:
        outcome = (y == 1).astype(np.intp)
        prob = p[:, 1]
        label = f"predicted P({names[1]})"
    else:
        outcome = (p.argmax(axis=1) == y).astype(np.intp)
        prob = p.max(axis=1)
        label = "top-label confidence"
    observed, predicted = calibration_curve(
        outcome, prob, n_bins=n_bins, strategy="uniform", pos_label=1
    )
    counts, edges = np.histogram(prob, bins=n_bins * 2, range=(0.0, 1.0))
    return {
        "label": label,
        "predicted": predicted.tolist(),
        "observed": observed.tolist(),
        "hist_centres": ((edges[:-1] + edges[1:]) / 2).tolist(),
        "hist_counts": counts.tolist(),
    }


def _split(name: str) -> tuple[str, str]:
    head, _, rest = name.partition("_")
    if rest and head.lower() in _SPLITS:
        return head.lower(), rest
    return "", name


def learning_curve_groups(
    curves: Mapping[str, Sequence[float | None]],
) -> dict[str, dict[str, list[float | None]]]:
    """Group per-epoch series by metric, so train and validation share a plot.

    ``{"train_loss": .., "val_loss": .., "val_accuracy": ..}`` becomes
    ``{"loss": {"train": .., "val": ..}, "accuracy": {"val": ..}}``; a name
    without a split prefix stands alone under its own name. NaN becomes None
    (a gap in the line) so the data stays valid JSON.
    """
    groups: dict[str, dict[str, list[float | None]]] = {}
    for name, series in curves.items():
        split, metric = _split(str(name))
        values = [None if v is None or not np.isfinite(float(v)) else float(v) for v in series]
        groups.setdefault(metric, {})[split or metric] = values
    return groups
