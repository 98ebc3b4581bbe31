"""ROC AUC and average precision of weighted rows: the one ranking kernel.

Each class's rows are sorted once by that class's score, runs of equal scores
grouped; every figure after that is a weighted sum over the groups. A row
enters with a *positive mass* and a *negative mass*, one of each per set of
weights, shape (m, n):

- one evaluation: mass 1 on the side of the row's true class (m = 1);
- bootstrap resamples: the row's multiplicity in each resample;
- expected figures (CBPE): the calibrated probability of the class and one
  minus it; simulated label sets: 0 or 1 per set.

So the point value, its bootstrap draws and the monitor's estimates come from
the same code. Per class the results equal scikit-learn's ``roc_auc_score``
and ``average_precision_score`` (ties included), at one sort per class
instead of scikit-learn's per-call checks, which cost seconds for a thousand
classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Kernel", "Ranking", "macro"]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
Kernel = Literal["roc_auc", "pr_auc"]
# Masses of one class's rows: positive, negative, each (m, n).
Masses = Callable[[int], tuple[FloatArray, FloatArray]]


def macro(values: FloatArray) -> FloatArray:
    """Mean over the columns (classes) defined in each row, NaN where none is.

    Example:
        >>> macro(np.array([[0.5, np.nan, 1.0], [np.nan, np.nan, np.nan]])).tolist()
        [0.75, nan]
    """
    defined = np.isfinite(values)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    count = defined.sum(axis=-1)
    out: FloatArray = np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)
    return out


class Ranking:
    """Scores of K classes, each class's rows sorted once, for any weighting of the rows.

    Args:
        scores: shape (n, K); column ``c`` ranks the rows for class ``c``.

    Example:
        >>> r = Ranking(np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]]))
        >>> positive = np.array([[1.0, 1.0, 0.0]])  # rows 0 and 1 are of class 1
        >>> float(r.roc_auc(1, positive, 1 - positive)[0])
        0.5
    """

    def __init__(self, scores: FloatArray) -> None:
        self.scores = scores
        self._sorted: dict[int, tuple[IntArray, IntArray]] = {}

    @property
    def summarised(self) -> list[int]:
        """The classes one figure summarises: binary ``classes[1]``, else all (a macro)."""
        k = self.scores.shape[1]
        return [1] if k == 2 else list(range(k))

    def _groups(self, c: int) -> tuple[IntArray, IntArray]:
        """Sort order of class ``c``'s scores (ascending) and where each run of equal ones starts."""
        if c not in self._sorted:
            score = self.scores[:, c]
            order = np.argsort(score, kind="stable")
            starts = np.r_[0, np.flatnonzero(np.diff(score[order])) + 1].astype(np.intp)
            self._sorted[c] = order, starts
        return self._sorted[c]

    def _grouped(self, c: int, mass: FloatArray) -> FloatArray:
        order, starts = self._groups(c)
        grouped: FloatArray = np.add.reduceat(mass[:, order], starts, axis=1)
        return grouped

    def roc_auc(self, c: int, pos: FloatArray, neg: FloatArray) -> FloatArray:
        """ROC AUC of class ``c`` for each set of masses, NaN where there are no pairs.

        AUC is the chance that a positive scores above a negative, ties
        counting half: ``sum_g pos_g * (neg_below_g + neg_g / 2)`` over the
        pairs. A row never pairs with itself, which matters only where a row
        has both masses (expected figures): hence the ``pos * neg`` terms.
        """
        pos_g, neg_g = self._grouped(c, pos), self._grouped(c, neg)
        below = np.cumsum(neg_g, axis=1) - neg_g
        self_pairs = np.einsum("ij,ij->i", pos, neg)
        wins = (pos_g * (below + neg_g / 2)).sum(axis=1) - self_pairs / 2
        pairs = pos.sum(axis=1) * neg.sum(axis=1) - self_pairs
        auc: FloatArray = np.divide(
            wins, pairs, out=np.full(pairs.shape, np.nan), where=pairs > 1e-12
        )
        return auc

    def pr_auc(self, c: int, pos: FloatArray, neg: FloatArray) -> FloatArray:
        """Average precision of class ``c`` for each set of masses, NaN where there is no positive.

        scikit-learn's definition: thresholds at the distinct scores, from the
        highest down, ``AP = sum_g (R_g - R_{g-1}) P_g``; the recall step of a
        group is its share of the positives, its precision that of every row
        scoring at least as high.
        """
        pos_g, neg_g = self._grouped(c, pos), self._grouped(c, neg)
        tp = np.cumsum(pos_g[:, ::-1], axis=1)[:, ::-1]  # rows scoring >= each group's score
        fp = np.cumsum(neg_g[:, ::-1], axis=1)[:, ::-1]
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        total = pos_g.sum(axis=1)
        ap: FloatArray = np.divide(
            (pos_g * precision).sum(axis=1),
            total,
            out=np.full(total.shape, np.nan),
            where=total > 0,
        )
        return ap

    def per_class(self, kernel: Kernel, masses: Masses, classes: Sequence[int]) -> FloatArray:
        """``kernel`` of each of ``classes``, shape (m, len(classes))."""
        fn = self.roc_auc if kernel == "roc_auc" else self.pr_auc
        return np.stack([fn(c, *masses(c)) for c in classes], axis=1)

    def summary(self, kernel: Kernel, masses: Masses) -> FloatArray:
        """Binary: the figure of ``classes[1]``; else the macro over the classes defined, (m,)."""
        return macro(self.per_class(kernel, masses, self.summarised))
