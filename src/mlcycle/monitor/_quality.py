"""Data quality of a monitoring window: what cannot be tested, and what is left out.

Monitoring has to survive whatever reached the prediction log, including
rows logged before serving refused them, and any file given with
``--current``. So a bad row is a counted finding in the report, never a
failure of the run:

- an input that is *absent* from the data, or *empty* (no value in any row of
  the window), cannot be tested for drift: the worst data-quality failure,
  and an alert;
- an infinite number in a numeric input is counted and treated as a missing
  value by the drift tests;
- a row whose outputs are not numbers the statistics can take (NaN or
  infinite probabilities or values, probabilities outside [0, 1] or not
  summing to 1) is counted and left out of prediction drift, performance,
  the CBPE estimate and fairness;
- a label that is not one of the model's classes (or, for regression, not a
  finite number) is counted and left out of target drift and performance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlcycle.monitor._alerts import Alert
from mlcycle.monitor._report import missing_mask
from mlcycle.monitor._window import Window

__all__ = ["DataQuality", "check_quality"]

Array = np.ndarray[Any, Any]
# A row's probabilities may sum to 1 within this (float32 outputs, rounding).
_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class DataQuality:
    """What a window holds that the statistics cannot take; :meth:`to_dict` is JSON-able.

    Attributes:
        rows: rows in the window.
        absent: inputs the data lacks altogether (read as missing).
        empty: inputs with no value in any row (absent ones included).
        non_finite: column → rows with an infinite input or an unusable output
            (``probabilities`` or ``value``).
        non_finite_rows: rows with at least one of those.
        excluded_rows: rows left out of the statistics of the model's answers.
        unusable_labels: labelled rows whose label is not a class (or not a
            finite number), left out of target drift and performance.
        label_examples: a few of those labels.
        unreadable: why rows were left out of the window before it got here
            (batch-scored rows whose input file is gone or changed).
    """

    rows: int
    absent: tuple[str, ...] = ()
    empty: tuple[str, ...] = ()
    non_finite: dict[str, int] = field(default_factory=dict)
    non_finite_rows: int = 0
    excluded_rows: int = 0
    unusable_labels: int = 0
    label_examples: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "absent": list(self.absent),
            "empty": list(self.empty),
            "non_finite": dict(self.non_finite),
            "non_finite_rows": self.non_finite_rows,
            "excluded_rows": self.excluded_rows,
            "unusable_labels": self.unusable_labels,
            "label_examples": list(self.label_examples),
            "unreadable": list(self.unreadable),
        }

    def alerts(self) -> list[Alert]:
        """An alert when inputs are absent or empty: nothing about them can be tested."""
        if not self.empty:
            return []
        named = ", ".join(self.empty[:5]) + (
            f" and {len(self.empty) - 5} more" if len(self.empty) > 5 else ""
        )
        how = "absent from the data" if set(self.empty) == set(self.absent) else "with no value"
        return [
            Alert(
                "data_quality",
                f"data quality: {len(self.empty)} input(s) {how} in all {self.rows} rows "
                f"({named}): they cannot be tested for drift",
                {"empty": list(self.empty), "absent": list(self.absent)},
            )
        ]

    def findings(self) -> list[str]:
        """One line per finding, for the report's notes and the terminal."""
        lines = [f"data quality: {note}; those rows are left out" for note in self.unreadable]
        if self.non_finite_rows:
            columns = ", ".join(f"{k}: {v}" for k, v in self.non_finite.items())
            line = (
                f"data quality: {self.non_finite_rows} of {self.rows} rows hold values that are "
                f"not finite numbers ({columns}); infinite inputs count as missing values"
            )
            if self.excluded_rows:
                line += (
                    f"; {self.excluded_rows} with unusable outputs left out of prediction "
                    "drift, performance, the estimate and fairness"
                )
            lines.append(line)
        if self.unusable_labels:
            examples = ", ".join(repr(e) for e in self.label_examples)
            lines.append(
                f"data quality: {self.unusable_labels} labels are not among the model's classes "
                f"or not numbers ({examples}); left out of target drift and performance"
            )
        return lines


def _bad_outputs(window: Window) -> tuple[Array, dict[str, int]]:
    """Rows whose outputs the statistics cannot take, and the count per output column."""
    bad = np.zeros(window.n, dtype=bool)
    counts: dict[str, int] = {}
    if window.probabilities is not None:
        p = np.asarray(window.probabilities, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            wrong = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (p > 1).any(axis=1)
            wrong |= np.abs(p.sum(axis=1) - 1.0) > _SUM_TOLERANCE
        if wrong.any():
            counts["probabilities"] = int(wrong.sum())
        bad |= wrong
    if window.values is not None:
        wrong = ~np.isfinite(np.asarray(window.values, dtype=np.float64))
        if wrong.any():
            counts["value"] = int(wrong.sum())
        bad |= wrong
    return bad, counts


def _unusable_labels(window: Window, classes: list[str] | None) -> tuple[Array, list[str]]:
    """Labelled rows whose label the statistics cannot take, and a few examples."""
    if window.actual is None or window.has_actual is None:
        return np.zeros(window.n, dtype=bool), []
    actual = window.actual
    if classes is None:
        with np.errstate(invalid="ignore"):
            wrong = window.has_actual & ~np.isfinite(actual.astype(np.float64))
    else:
        known = set(classes)
        wrong = window.has_actual & np.fromiter(
            (v not in known for v in actual.tolist()), dtype=bool, count=len(actual)
        )
    examples = sorted({str(v) for v in actual[wrong].tolist()})[:5]
    return wrong, examples


def check_quality(
    window: Window, task: str, classes: list[str] | None
) -> tuple[Window, Window, DataQuality]:
    """Find what ``window`` holds that the statistics cannot take.

    Returns:
        The window with infinite inputs as missing values and unusable labels
        unmarked; the same window without the rows whose outputs are unusable
        (for the statistics of the model's answers); and the findings.
    """
    n = window.n
    non_finite: dict[str, int] = {}
    bad_rows = np.zeros(n, dtype=bool)
    inputs = dict(window.inputs)
    for name, values in inputs.items():
        if values.dtype.kind == "f":
            infinite = np.isinf(values)
            if infinite.any():
                non_finite[name] = int(infinite.sum())
                bad_rows |= infinite
                inputs[name] = np.where(infinite, np.nan, values)
    empty = tuple(name for name, values in inputs.items() if missing_mask(values).all())
    bad_outputs, output_counts = _bad_outputs(window)
    non_finite.update(output_counts)
    bad_rows |= bad_outputs
    wrong_labels, examples = _unusable_labels(
        window, None if task == "regression" else list(classes or [])
    )
    cleaned = Window(
        window.source,
        inputs,
        window.labels,
        window.probabilities,
        window.values,
        window.actual,
        None if window.has_actual is None else window.has_actual & ~wrong_labels,
        window.times,
        window.extra,
        window.ood_flags,
        window.ood_scores,
        window.feeds,
        window.ood_logged,
        list(window.absent),
        list(window.notes),
    )
    scored = cleaned.take(np.flatnonzero(~bad_outputs)) if bad_outputs.any() else cleaned
    quality = DataQuality(
        rows=n,
        absent=tuple(window.absent),
        empty=empty,
        non_finite=non_finite,
        non_finite_rows=int(bad_rows.sum()),
        excluded_rows=int(bad_outputs.sum()),
        unusable_labels=int(wrong_labels.sum()),
        label_examples=tuple(examples),
        unreadable=tuple(window.notes),
    )
    return cleaned, scored, quality
