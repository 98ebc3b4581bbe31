"""The plugin boundary of drift detection: one abstract :class:`DriftTest`.

A drift test compares one column of a *reference* sample (what the model was
trained or validated on) with the same column of a *current* sample (a window
of the prediction log) and returns a statistic, plus a p-value when the test
is a hypothesis test. A new test is one new subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["DriftTest", "TestKind"]

TestKind = Literal["p_value", "distance"]


class DriftTest(ABC):
    """Compares a reference and a current sample of one column.

    Subclasses set :attr:`name`, :attr:`kind`, :attr:`default_threshold` and
    :attr:`min_rows`, and implement :meth:`compute`. ``kind`` says how a
    threshold reads: for ``"p_value"`` tests a column drifts when its
    (adjusted) p-value is ``<= threshold``; for ``"distance"`` tests when the
    statistic is ``>= threshold`` (Evidently's convention for both).
    ``min_rows`` is the smallest current sample (non-missing values) on which
    the test gives a verdict at all: below it, the default threshold flags
    more than about 5 % of windows that did not move (see
    :mod:`mlcycle.monitor._report` for how the figures were measured).

    Inputs have missing values already removed, unless the test sets
    :attr:`accepts_nan` (it ignores NaN itself, saving a copy); both are
    non-empty. A test is constructed without arguments and registered by name
    in :data:`mlcycle.plugins.DRIFT_TESTS` (the name the spec's
    ``monitor.columns.<column>.test`` uses).

    Example:
        >>> import numpy as np
        >>> class MeanShift(DriftTest):
        ...     name, kind, default_threshold = "mean_shift", "distance", 0.5
        ...     def compute(self, reference, current):
        ...         return abs(float(np.mean(current) - np.mean(reference))), None
        >>> MeanShift().compute(np.zeros(3), np.ones(3))
        (1.0, None)
    """

    name: str
    kind: TestKind
    default_threshold: float
    min_rows: int = 30
    accepts_nan: ClassVar[bool] = False

    @abstractmethod
    def compute(
        self, reference: NDArray[np.generic], current: NDArray[np.generic]
    ) -> tuple[float, float | None]:
        """Returns ``(statistic, p_value)`` for one column; ``p_value`` is None for distances."""

    def compute_many(
        self, reference: NDArray[np.float64], current: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        """Runs the test on every column of two 2-D numeric arrays.

        Columns may hold NaN (missing values); each column's NaN are ignored.
        The base implementation loops over columns; numeric tests override it
        with a vectorised pass.

        Returns:
            The statistics, and the p-values (None for distance tests), one per column.
        """
        statistics = np.empty(reference.shape[1])
        p_values = np.empty(reference.shape[1])
        for j in range(reference.shape[1]):
            ref = reference[:, j]
            cur = current[:, j]
            statistic, p_value = self.compute(ref[~np.isnan(ref)], cur[~np.isnan(cur)])
            statistics[j] = statistic
            p_values[j] = np.nan if p_value is None else p_value
        return statistics, (p_values if self.kind == "p_value" else None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
