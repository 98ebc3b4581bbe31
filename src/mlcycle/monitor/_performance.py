"""Performance of a deployed model: realised once labels arrive, estimated before.

Labels come late (``POST /feedback``, or a file of request ids and labels), so
:func:`join_feedback` matches them to the logged predictions, and
:func:`window_performance` scores a window of labelled rows with a bootstrap
interval and decides whether it is worse than the reference. Until labels
arrive, :class:`CBPE` estimates a classifier's metrics from its own
probabilities, calibrated on the reference (NannyML's confidence-based
performance estimation); the report shows both side by side, because only
realised performance sees a change in the meaning of the data.

This module imports numpy, pyarrow and scikit-learn (isotonic regression, at
fit time only) and mlcycle's evaluation code: it runs next to ONNX Runtime,
never torch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle._numbers import finite
from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import (
    Metric,
    Ranking,
    classification_metrics,
    count_metrics,
    default_metric,
    headline_with_ci,
    metric_names,
    point_metrics,
)
from mlcycle.evaluate import metric as lookup
from mlcycle.evaluate._classification import check_labels, predict_labels
from mlcycle.evaluate._task import resolve_task

if TYPE_CHECKING:
    from mlcycle.spec import PerformanceSpec

__all__ = [
    "CBPE",
    "Estimate",
    "PerformanceResult",
    "class_names",
    "join_feedback",
    "window_performance",
]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


# --- joining late labels -------------------------------------------------------------


def _require(table: pa.Table, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing}; it has {table.column_names}")


def _latest_rows(table: pa.Table) -> tuple[pa.Array, IntArray]:
    """Distinct non-null request ids, and for each the row that wins: the latest.

    Latest is by ``time`` when the table has it, then by position (a later row
    wins a tie). Ids are dictionary-encoded once, so the ordering is a numeric
    ``lexsort`` of integer codes rather than a sort of strings.
    """
    ids = pc.cast(table.column("request_id"), pa.string()).combine_chunks()
    valid = np.flatnonzero(ids.is_valid().to_numpy(zero_copy_only=False))
    encoded = pc.dictionary_encode(ids.take(pa.array(valid)))
    codes = encoded.indices.to_numpy().astype(np.intp)
    distinct = encoded.dictionary
    if len(distinct) == valid.size:  # no duplicates: every row wins
        winners = np.empty(valid.size, dtype=np.intp)
        winners[codes] = valid
        return distinct, winners
    keys: list[npt.NDArray[Any]] = [valid]
    if "time" in table.column_names:
        stamps = pc.cast(table.column("time").take(pa.array(valid)), pa.int64())
        # A row without a time is the oldest; microseconds are exact in float64.
        times = stamps.to_numpy(zero_copy_only=False).astype(np.float64)
        keys.append(np.nan_to_num(times, nan=-np.inf))
    keys.append(codes)
    order = np.lexsort(keys)  # the last key sorts first: id, then time, then position
    sorted_codes = codes[order]
    ends = np.r_[np.flatnonzero(np.diff(sorted_codes)), sorted_codes.size - 1]
    winners = np.empty(len(distinct), dtype=np.intp)
    winners[sorted_codes[ends]] = valid[order[ends]]
    return distinct, winners


def join_feedback(predictions: pa.Table, feedback: pa.Table) -> pa.Table:
    """The logged predictions that have a label, with the label in column ``actual``.

    Several feedback rows for one request id are corrections: the latest wins
    (by ``time``, then the later row). Predictions without feedback are left
    out, and so is feedback for requests not in ``predictions``. A request id
    logged twice (which the server never does) counts once, as its latest
    row, so a label is never counted twice. Rows keep the order of
    ``predictions``. The join is a hash lookup (``pyarrow.compute.index_in``)
    plus one integer sort when ids repeat, so millions of rows take seconds.

    Args:
        predictions: rows of the prediction log (``PredictionLog.read()``),
            with ``request_id`` and optionally ``time``.
        feedback: rows with ``request_id`` and ``label``, optionally ``time``
            (``PredictionLog.read_feedback()``, or a file of labels). An empty
            table with no columns means no feedback yet.

    Returns:
        ``predictions``' columns (an existing ``actual`` is replaced), plus
        ``actual`` (the label) and, when the feedback has ``time``,
        ``actual_time`` (when the label arrived).

    Raises:
        DataError: a required column is missing.

    Example:
        >>> import pyarrow as pa
        >>> preds = pa.table({"request_id": ["a", "b", "c"], "label": ["x", "y", "x"]})
        >>> labels = pa.table({"request_id": ["c", "a", "c"], "label": ["y", "x", "x"]})
        >>> joined = join_feedback(preds, labels)
        >>> joined["request_id"].to_pylist(), joined["actual"].to_pylist()
        (['a', 'c'], ['x', 'x'])
    """
    _require(predictions, ["request_id"], "predictions")
    if "actual" in predictions.column_names:
        predictions = predictions.drop_columns(["actual"])
    if feedback.num_columns == 0:
        return predictions.slice(0, 0).append_column("actual", pa.array([], pa.string()))
    _require(feedback, ["request_id", "label"], "feedback")
    labelled_ids, label_rows = _latest_rows(feedback)
    predicted_ids, prediction_rows = _latest_rows(predictions)
    position = pc.index_in(predicted_ids, value_set=labelled_ids)
    matched = position.is_valid().to_numpy(zero_copy_only=False)
    where = position.filter(pa.array(matched)).to_numpy().astype(np.intp)
    keep = prediction_rows[matched]
    order = np.argsort(keep, kind="stable")  # back to the log's order
    source = label_rows[where[order]]
    joined = predictions.take(pa.array(keep[order]))
    joined = joined.append_column("actual", feedback.column("label").take(pa.array(source)))
    if "time" in feedback.column_names:
        arrived = feedback.column("time").take(pa.array(source))
        joined = joined.append_column("actual_time", arrived)
    return joined


# --- realised performance of a labelled window ----------------------------------------


@dataclass(frozen=True)
class PerformanceResult:
    """One window's realised performance against the reference; :meth:`to_dict` is JSON-able.

    ``drop`` is how much worse the window is than the reference, positive when
    worse whichever way the metric points (relative to the reference for mae
    and rmse, absolute otherwise). ``alert`` needs ``drop > max_drop`` and the
    whole interval on the worse side of the reference. ``reason`` says why
    there is an alert or no verdict, or why a large drop did not alert; it is
    None for a healthy window. ``metrics`` holds every headline metric of the
    window as ``{"value", "low", "high"}``.
    """

    metric: str
    value: float | None
    low: float | None
    high: float | None
    reference: float | None
    drop: float | None
    n: int
    alert: bool
    reason: str | None
    higher_is_better: bool
    max_drop: float
    confidence: float
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, one key per field."""
        return asdict(self)


def class_names(labels: npt.NDArray[Any], classes: Sequence[str]) -> npt.NDArray[Any]:
    """Labels (strings, or None) as class names; a label equal in value to a class is that class.

    A partly labelled integer column read through pandas comes back as floats,
    so ``"1.0"`` must count as class ``"1"``. Labels that match no class are
    returned unchanged, for the caller to report.

    Example:
        >>> class_names(np.array(["1.0", "0", None, "2.5"], dtype=object), ["0", "1"]).tolist()
        ['1', '0', None, '2.5']
    """
    names = [str(c) for c in classes]
    by_value: dict[float, str] = {}
    for name in names:
        try:
            by_value.setdefault(float(name), name)
        except ValueError:
            continue
    known = set(names)
    mapping: dict[Any, Any] = {}
    for label in {v for v in labels.tolist() if v is not None}:
        text = str(label)
        mapping[label] = text
        if text not in known and by_value:
            with contextlib.suppress(ValueError):
                mapping[label] = by_value.get(float(text), text)
    return np.asarray([None if v is None else mapping[v] for v in labels.tolist()], dtype=object)


def _class_indices(y_true: Any, classes: Sequence[str]) -> IntArray:
    """Labels as class indices: names (the feedback's strings) are looked up in ``classes``."""
    if isinstance(y_true, pa.ChunkedArray | pa.Array):
        y_true = y_true.to_numpy(zero_copy_only=False)
    y = np.asarray(y_true)
    named = y.dtype.kind in "US" or (
        y.dtype.kind == "O" and all(isinstance(v, str) for v in y.ravel())
    )
    if y.ndim != 1 or not named:
        return check_labels(y, len(classes))
    names, inverse = np.unique(
        class_names(y.astype(object), classes).astype(str), return_inverse=True
    )
    lookup = {str(c): i for i, c in enumerate(classes)}
    unknown = [str(n) for n in names if n not in lookup]
    if unknown:
        raise DataError(
            f"y_true: labels {unknown[:5]} are not among the classes {list(classes)}"
            + (f" ({len(unknown)} unknown labels)" if len(unknown) > 5 else "")
        )
    table = np.array([lookup[str(n)] for n in names], dtype=np.intp)
    return table[inverse.ravel()]


def _matrix(values: Any, name: str) -> FloatArray:
    """(n, K) floats from a numpy array or a pyarrow fixed-size-list column (the log's)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    if isinstance(values, pa.FixedSizeListArray):
        if values.null_count:
            raise DataError(f"{name}: {values.null_count} rows have no probabilities")
        width = values.type.list_size
        flat = values.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat, dtype=np.float64).reshape(len(values), width)
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected numbers, {exc}") from None


def _vector(values: Any) -> npt.NDArray[Any]:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return np.asarray(values.to_numpy(zero_copy_only=False))
    return np.asarray(values)


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4g}"


def _drop(metric: Metric, value: float, reference: float) -> float:
    """How much worse ``value`` is than ``reference``: relative for metrics in the target's units.

    So the default max_drop of 0.05 means "5 % worse" whatever the units.
    """
    return metric.relative(-metric.improvement(reference, value), reference)


def window_performance(
    *,
    task: str,
    classes: Sequence[str] | None,
    y_true: Any,
    probabilities: Any = None,
    values: Any = None,
    reference: Mapping[str, float | None],
    spec: PerformanceSpec,
    seed: int = 0,
    threshold: float | None = None,
) -> PerformanceResult:
    """Score a window of labelled rows and decide whether it is worse than the reference.

    The metric (``spec.metric``; accuracy for classifiers and RMSE for
    regression by default) comes with a percentile bootstrap interval of
    ``spec.bootstrap`` resamples at ``spec.confidence``. The window alerts when
    it is worse than ``reference[metric]`` by more than ``spec.max_drop`` *and*
    the better end of the interval is still worse than the reference, so that
    a small window cannot alarm by chance. Worse means lower, or higher for
    the errors (mae, rmse, mape, log_loss, ece); for mae and rmse, which are
    in the target's units, the drop is relative (0.05 is 5 % worse). With
    ``spec.bootstrap == 0`` there is no interval and the drop alone decides.
    Fewer than ``spec.min_labels`` rows give the point values but no verdict.

    Args:
        task: ``binary``, ``multiclass``, ``classification`` or ``regression``.
        classes: the class names, in the model's column order (classifiers).
        y_true: the labels: class names (the feedback's strings) or indices,
            or regression targets (numbers, or numeric strings).
        probabilities: classifiers: shape (n, K), or the log's
            ``probabilities`` column.
        values: regression: the predictions, shape (n,).
        reference: the reference metrics (the validation record).
        spec: the project's ``monitor.performance`` section.
        seed: seed of the bootstrap.
        threshold: binary only: the model's decision threshold on ``P(classes[1])``.

    Returns:
        A :class:`PerformanceResult`.

    Raises:
        SpecError: the metric is unknown for the task.
        DataError: the labels or outputs are malformed, or the reference
            lacks the metric.

    Example:
        >>> from mlcycle.spec import PerformanceSpec
        >>> r = window_performance(task="regression", classes=None, y_true=[1.0, 2.0, 3.0],
        ...     values=[1.1, 2.1, 2.9], reference={"rmse": 0.1},
        ...     spec=PerformanceSpec(min_labels=30))
        >>> r.alert, r.reason
        (False, 'only 3 labelled rows, fewer than min_labels=30: no verdict')
    """
    family = resolve_task(task, classes)
    metric = lookup(spec.metric or default_metric(task), family, field="monitor.performance.metric")
    if metric.name not in reference:
        raise DataError(f"reference: has no {metric.name!r} (it has {sorted(reference)})")
    raw = reference[metric.name]
    ref = None if raw is None or not math.isfinite(float(raw)) else float(raw)

    if family == "classification":
        if probabilities is None:
            raise DataError("probabilities: a classifier's window needs the model's probabilities")
        assert classes is not None  # resolve_task checked it
        y, out = _class_indices(y_true, classes), _matrix(probabilities, "probabilities")
    else:
        if values is None:
            raise DataError("values: a regression window needs the model's predictions")
        y, out = _vector(y_true), _vector(values)

    n = len(y)
    names = metric_names(family, headline=True)
    if metric.name not in names:
        names = (*names, metric.name)
    metrics: dict[str, dict[str, float | None]] = {}
    if n >= spec.min_labels and spec.bootstrap > 0:
        metrics = headline_with_ci(
            task,
            y,
            out,
            classes,
            n_boot=spec.bootstrap,
            alpha=1.0 - spec.confidence,
            seed=seed,
            threshold=threshold,
            names=names,
        )
    elif n:
        point = point_metrics(task, y, out, classes, names=names, threshold=threshold)
        metrics = {m: {"value": point[m], "low": None, "high": None} for m in names}
    value, low, high = (metrics.get(metric.name, {}).get(k) for k in ("value", "low", "high"))
    alert, reason = _verdict(metric.name, value, low, high, ref, n, spec)
    return PerformanceResult(
        metric=metric.name,
        value=value,
        low=low,
        high=high,
        reference=ref,
        drop=None if value is None or ref is None else _drop(metric, value, ref),
        n=n,
        alert=alert,
        reason=reason,
        higher_is_better=metric.higher_is_better,
        max_drop=spec.max_drop,
        confidence=spec.confidence,
        metrics=metrics,
    )


def _verdict(
    name: str,
    value: float | None,
    low: float | None,
    high: float | None,
    ref: float | None,
    n: int,
    spec: PerformanceSpec,
) -> tuple[bool, str | None]:
    """Whether a window alerts, and why (None: a healthy window).

    ``name`` is a metric of the table; the loop also judges a promoted version
    against its score on the gate's held-out rows with this.
    """
    metric = lookup(name)
    if n == 0:
        return False, "no labelled rows: no verdict"
    if n < spec.min_labels:
        return False, f"only {n} labelled rows, fewer than min_labels={spec.min_labels}: no verdict"
    if value is None or ref is None:
        where = "window" if value is None else "reference"
        return False, f"{metric.name} is undefined on the {where}"
    drop = _drop(metric, value, ref)
    if drop <= spec.max_drop:
        return False, None
    higher = metric.higher_is_better
    told = f"{metric.name} {_fmt(value)}"
    if low is not None and high is not None:
        told += f" ({spec.confidence:.0%} interval [{_fmt(low)}, {_fmt(high)}])"
    amount = f"{drop:.1%}" if metric.target_units else f"{drop:.4g}"
    side = "below" if higher else "above"
    told += f" is {amount} {side} the reference {_fmt(ref)}, more than max_drop {spec.max_drop:g}"
    best = high if higher else low
    if best is not None and (best >= ref if higher else best <= ref):
        return (
            False,
            told + f", but the interval reaches the reference at {n} labels: not significant",
        )
    return True, told


# --- estimated performance without labels (CBPE) -------------------------------------


@dataclass(frozen=True)
class Estimate:
    """An estimated metric and the interval the realised value should fall in."""

    value: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


Calibrator = tuple[FloatArray, FloatArray] | None  # isotonic breakpoints (x, y); None: identity
Calibration = Literal["isotonic", "auto", "none"]

# Simulated label sets are drawn a block at a time, about this many entries each.
_BLOCK = 1 << 22


def _fit_isotonic(x: FloatArray, target: FloatArray) -> tuple[FloatArray, FloatArray]:
    from sklearn.isotonic import IsotonicRegression  # fit time only

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(x, target)
    return (
        np.asarray(iso.X_thresholds_, dtype=np.float64),
        np.asarray(iso.y_thresholds_, dtype=np.float64),
    )


def _fit_calibrators(p: FloatArray, y: IntArray) -> list[Calibrator]:
    """One isotonic fit of the one-hot truth per calibrated column (binary: ``classes[1]`` only)."""
    columns = [1] if p.shape[1] == 2 else range(p.shape[1])
    return [_fit_isotonic(p[:, c], (y == c).astype(np.float64)) for c in columns]


def _calibrated(p: FloatArray, calibrators: Sequence[Calibrator]) -> FloatArray:
    """Apply the calibrators; multiclass rows are renormalised to sum to 1."""

    def apply(i: int, x: FloatArray) -> FloatArray:
        breakpoints = calibrators[i]
        return x if breakpoints is None else np.interp(x, breakpoints[0], breakpoints[1])

    if p.shape[1] == 2:
        q1 = apply(0, p[:, 1])
        return np.stack([1.0 - q1, q1], axis=1)
    q = np.stack([apply(c, p[:, c]) for c in range(p.shape[1])], axis=1)
    sums = q.sum(axis=1, keepdims=True)
    empty = sums[:, 0] <= 0  # every column calibrated to 0: keep the raw row
    q[empty], sums[empty] = p[empty], p[empty].sum(axis=1, keepdims=True)
    out: FloatArray = q / sums
    return out


def _classwise_ece(q: FloatArray, onehot: FloatArray, bins: int = 10) -> float:
    """Mean over classes of the ECE of that class's probability, in equal-count bins."""
    n = q.shape[0]
    edges = np.linspace(0, n, min(bins, max(n // 2, 1)) + 1).astype(np.intp)
    total = 0.0
    for c in range(q.shape[1]):
        order = np.argsort(q[:, c], kind="stable")
        gap = np.add.reduceat(q[order, c] - onehot[order, c], edges[:-1])
        total += float(np.abs(gap).sum()) / n
    return total / int(q.shape[1])


def _helps(p: FloatArray, y: IntArray, seed: int, folds: int = 5) -> bool:
    """Whether calibration lowers the out-of-fold calibration error on the reference.

    As NannyML's ``needs_calibration``: calibrate each fold's scores with
    isotonic fits to the other folds, and compare the expected calibration
    error (equal-count bins, per class) before and after. Decided for all
    columns at once: calibrating some columns of a multiclass model and not
    others, then renormalising, distorts the ones left alone.
    """
    if y.size < 2 * folds:
        return False  # too few rows to tell
    fold = np.random.default_rng(seed).permutation(y.size) % folds
    calibrated = np.empty_like(p)
    for f in range(folds):
        held = fold == f
        calibrated[held] = _calibrated(p[held], _fit_calibrators(p[~held], y[~held]))
    onehot = (y[:, None] == np.arange(p.shape[1])[None, :]).astype(np.float64)
    return _classwise_ece(calibrated, onehot) < _classwise_ece(p, onehot)


class CBPE:
    """Confidence-based performance estimation: a classifier's metrics without labels.

    NannyML's method. If the model's probabilities are calibrated, a row
    predicted as class k with calibrated probability 0.9 is right 90 % of the
    time; summing such probabilities gives the expected confusion matrix of a
    window (entry (j, k): the sum, over the rows predicted k, of the
    probability of class j), and every metric follows from it. Expected
    accuracy is exactly the mean calibrated probability of the predicted
    class; balanced accuracy and macro F1 are those of the expected confusion
    matrix; ROC AUC (binary: of ``classes[1]``; multiclass: one-vs-rest macro)
    counts the expected correctly ordered pairs, weighting each row as
    positive by its calibrated probability and ranking rows by the model's
    own score.

    Calibration (:meth:`fit`, on the reference: the model's answers on the
    validation split with the truth): one isotonic regression of the one-hot
    truth on each class's probability, one-vs-rest (binary: one, of
    ``P(classes[1])``, with ``P(classes[0]) = 1 - P(classes[1])``); for
    multiclass the calibrated columns are renormalised to sum to 1 per row
    (a row whose calibrated columns are all 0 keeps its raw probabilities).
    ``calibration="auto"`` calibrates only where that lowers the expected
    calibration error out of fold (5-fold on the reference, all columns
    together), as NannyML decides; the default calibrates always, which on
    our tests tracked covariate shift at least as well (an isotonic fit is
    monotone, so it costs little on already calibrated scores).
    The predicted class, and so the decision whose quality is estimated,
    always comes from the raw probabilities.

    The interval of each estimate is the range the *realised* metric of the
    window should fall in with the given confidence if the assumptions hold:
    labels are simulated from the calibrated probabilities (each row's label
    drawn independently) and the metric is computed on each simulated set.
    It leaves out the error of the calibration itself, fitted on a finite
    reference: with a few hundred reference rows, expect estimates a few
    points off on windows whose mix is far from the reference's.

    Assumptions, which the report prints (:attr:`ASSUMPTIONS`):

    - no concept shift: P(label | inputs) is the same as on the reference;
      only the mix of inputs may change. A change in what the labels mean
      leaves the probabilities, and so the estimate, unchanged: CBPE cannot
      see it, which is why realised performance is shown beside it;
    - the calibration fitted on the reference holds on the window: no shift
      into regions of the inputs the reference did not cover;
    - the window is large enough for its realised metric to be close to its
      expectation (the interval says how close).

    Example:
        >>> import numpy as np
        >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]] * 25)
        >>> y = np.array([0, 1, 1, 1] * 25)
        >>> cbpe = CBPE.fit(p, y, ["no", "yes"], calibration="none")
        >>> round(cbpe.estimate(p, n_boot=0)["accuracy"].value, 3)
        0.75
    """

    FORMAT = "mlcycle-cbpe/1"
    # The classification metrics a report leads with; each is a function of
    # per-class counts or of the ranking, which CBPE can take in expectation.
    METRICS = metric_names("classification", headline=True)
    ASSUMPTIONS = (
        "No concept shift: P(label | inputs) is unchanged since the reference; "
        "a change in what the labels mean is invisible to the estimate.",
        "The model's scores, calibrated on the reference, stay calibrated on the window "
        "(no shift into input regions the reference did not cover).",
        "The window is large enough for its realised metric to be near its expectation; "
        "the interval is the range the realised value should fall in.",
    )

    def __init__(
        self,
        classes: Sequence[str],
        calibrators: Sequence[Calibrator],
        *,
        threshold: float | None = None,
        reference: Mapping[str, float | None] | None = None,
        n_reference: int = 0,
    ) -> None:
        self.classes = [str(c) for c in classes]
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise SpecError(f"classes: expected at least 2 distinct names, got {self.classes!r}")
        expected = 1 if len(self.classes) == 2 else len(self.classes)
        if len(calibrators) != expected:
            raise DataError(
                f"calibrators: expected {expected} for {len(self.classes)} classes, "
                f"got {len(calibrators)}"
            )
        if threshold is not None and (len(self.classes) != 2 or not 0.0 <= threshold <= 1.0):
            raise SpecError(f"threshold: {threshold!r} needs 2 classes and a value in [0, 1]")
        self.calibrators = list(calibrators)
        self.threshold = threshold
        self.reference = dict(reference or {})
        self.n_reference = n_reference

    @classmethod
    def fit(
        cls,
        probabilities: Any,
        y_true: Any,
        classes: Sequence[str],
        *,
        threshold: float | None = None,
        calibration: Calibration = "isotonic",
        seed: int = 0,
    ) -> CBPE:
        """Calibrate on the reference: the model's probabilities there, and the truth.

        Args:
            probabilities: shape (n, K) on the reference rows.
            y_true: their labels (class indices, or names from ``classes``).
            classes: the K class names, in column order.
            threshold: binary only: the model's decision threshold on ``P(classes[1])``.
            calibration: ``isotonic`` (always), ``auto`` (where it helps out
                of fold) or ``none`` (trust the scores).
            seed: seed of the out-of-fold split of ``auto``.

        Returns:
            The fitted estimator; ``reference`` holds the reference's realised
            headline metrics.
        """
        if calibration not in ("isotonic", "auto", "none"):
            raise SpecError(f"calibration: {calibration!r} is not one of isotonic, auto, none")
        names = [str(c) for c in classes]
        y = _class_indices(y_true, names)
        p = _matrix(probabilities, "probabilities")
        realised = classification_metrics(y, p, names, threshold=threshold)
        calibrators: list[Calibrator] = [None] * (1 if len(names) == 2 else len(names))
        if calibration == "isotonic" or (calibration == "auto" and _helps(p, y, seed)):
            calibrators = _fit_calibrators(p, y)
        return cls(
            names,
            calibrators,
            threshold=threshold,
            reference={m: realised[m] for m in cls.METRICS},
            n_reference=int(y.size),
        )

    def _check(self, probabilities: Any) -> FloatArray:
        p = _matrix(probabilities, "probabilities")
        k = len(self.classes)
        if p.ndim != 2 or p.shape[1] != k:
            raise DataError(f"probabilities: expected shape (n, {k}), got {p.shape}")
        if p.shape[0] == 0:
            raise DataError("probabilities: no rows to estimate on")
        bad = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (p > 1).any(axis=1)
        if bad.any():
            raise DataError(
                f"probabilities: {int(bad.sum())} rows are not probabilities "
                f"(first: row {int(np.flatnonzero(bad)[0])})"
            )
        off = np.abs(p.sum(axis=1) - 1.0) > 1e-3
        if off.any():
            raise DataError(
                f"probabilities: {int(off.sum())} rows do not sum to 1 "
                f"(first: row {int(np.flatnonzero(off)[0])})"
            )
        return p

    def calibrate(self, probabilities: Any) -> FloatArray:
        """The calibrated probabilities, shape (n, K), rows summing to 1."""
        return _calibrated(self._check(probabilities), self.calibrators)

    def estimate(
        self,
        probabilities: Any,
        *,
        n_boot: int = 500,
        confidence: float = 0.95,
        seed: int = 0,
    ) -> dict[str, Estimate]:
        """Estimated accuracy, balanced accuracy, macro F1 and ROC AUC of a window.

        Args:
            probabilities: the model's raw probabilities on the window, (n, K).
            n_boot: simulated label sets for the interval (0: no interval).
            confidence: the interval's coverage.
            seed: seed of the simulation.

        Returns:
            ``{metric: Estimate}`` for each of :attr:`METRICS`.
        """
        if n_boot < 0:
            raise SpecError(f"n_boot: {n_boot!r} is not >= 0")
        if not 0.0 < confidence < 1.0:
            raise SpecError(f"confidence: {confidence!r} is not in (0, 1)")
        p = self._check(probabilities)
        q = self.calibrate(p)
        k = q.shape[1]
        pred = predict_labels(p / p.sum(axis=1, keepdims=True), self.threshold)
        ranking = Ranking(p)  # the model's own scores rank the rows
        predicted = np.bincount(pred, minlength=k).astype(np.float64)
        # A row predicted as c is right with probability q[c]; class j expects sum(q[:, j]) rows.
        hits = np.bincount(pred, q[np.arange(pred.size), pred], minlength=k).astype(np.float64)
        expected = self._metrics(
            (hits[None], q.sum(axis=0)[None], predicted[None]),
            ranking,
            lambda c: (q[None, :, c], 1.0 - q[None, :, c]),
        )
        values = {name: float(v[0]) for name, v in expected.items()}
        if n_boot == 0:
            return {m: Estimate(finite(values[m]), None, None) for m in self.METRICS}

        draws = self._simulate(q, pred, ranking, n_boot, seed)
        alpha = 1.0 - confidence
        out: dict[str, Estimate] = {}
        for m in self.METRICS:
            defined = draws[m][np.isfinite(draws[m])]
            if defined.size == 0 or not math.isfinite(values[m]):
                out[m] = Estimate(finite(values[m]), None, None)
                continue
            low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
            out[m] = Estimate(values[m], float(low), float(high))
        return out

    def _metrics(
        self,
        counts: tuple[FloatArray, FloatArray, FloatArray],
        ranking: Ranking,
        masses: Callable[[int], tuple[FloatArray, FloatArray]],
    ) -> dict[str, FloatArray]:
        """Each of :attr:`METRICS` by the metric table's formulas, one value per set (m,).

        ``counts``: per set and class, hits, true rows and predicted rows,
        (m, K) each, expected or simulated; ``masses(c)``: each row's positive
        and negative mass for class ``c``, (m, n) each.
        """
        labels = count_metrics(*counts)
        return {
            name: ranking.summary("roc_auc", masses) if name == "roc_auc" else labels[name]
            for name in self.METRICS
        }

    def _simulate(
        self, q: FloatArray, pred: IntArray, ranking: Ranking, n_boot: int, seed: int
    ) -> dict[str, FloatArray]:
        """Metrics of ``n_boot`` label sets drawn from the calibrated probabilities.

        Per set only per-class counts, (m, K), and one (m, n) label matrix:
        never a K x K matrix per set.
        """
        n, k = q.shape
        rng = np.random.default_rng(seed)
        cumulative = np.cumsum(q, axis=1)[:, :-1]
        predicted = np.bincount(pred, minlength=k).astype(np.float64)
        per_block = max(1, min(n_boot, _BLOCK // max(n, k)))
        parts: dict[str, list[FloatArray]] = {m: [] for m in self.METRICS}
        for start in range(0, n_boot, per_block):
            m = min(per_block, n_boot - start)
            u = rng.random((m, n))
            labels = np.zeros((m, n), dtype=np.intp)
            for j in range(k - 1):  # the label is the number of cumulative bounds u passes
                labels += u >= cumulative[None, :, j]
            index = labels + np.arange(m)[:, None] * k
            true_n = np.bincount(index.ravel(), minlength=m * k).reshape(m, k)
            hits = np.bincount(index[labels == pred].ravel(), minlength=m * k).reshape(m, k)
            counts = (
                hits.astype(np.float64),
                true_n.astype(np.float64),
                np.broadcast_to(predicted, (m, k)),
            )

            def masses(c: int, labels: IntArray = labels) -> tuple[FloatArray, FloatArray]:
                positive = (labels == c).astype(np.float64)
                return positive, 1.0 - positive

            for name, v in self._metrics(counts, ranking, masses).items():
                parts[name].append(v)
        return {name: np.concatenate(v) for name, v in parts.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (format ``mlcycle-cbpe/1``): the isotonic breakpoints as lists, no pickle."""
        return {
            "format": self.FORMAT,
            "classes": list(self.classes),
            "threshold": self.threshold,
            "calibrators": [
                None if c is None else {"x": c[0].tolist(), "y": c[1].tolist()}
                for c in self.calibrators
            ],
            "reference": dict(self.reference),
            "n_reference": self.n_reference,
            "assumptions": list(self.ASSUMPTIONS),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> CBPE:
        """Rebuild from :meth:`to_dict`'s output, checking every field.

        Raises:
            DataError: the document is not an ``mlcycle-cbpe/1`` document, or a
                field is missing or malformed (the message names it).
        """
        if not isinstance(doc, Mapping):
            raise DataError(f"cbpe: expected a JSON object, got {type(doc).__name__}")
        if doc.get("format") != cls.FORMAT:
            raise DataError(f"cbpe.format: {doc.get('format')!r}, expected {cls.FORMAT!r}")
        classes = doc.get("classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise DataError(f"cbpe.classes: expected a list of names, got {classes!r}")
        raw = doc.get("calibrators")
        if not isinstance(raw, list):
            raise DataError(f"cbpe.calibrators: expected a list, got {type(raw).__name__}")
        calibrators = [_calibrator(item, f"cbpe.calibrators[{i}]") for i, item in enumerate(raw)]
        threshold = doc.get("threshold")
        if threshold is not None and not isinstance(threshold, int | float):
            raise DataError(f"cbpe.threshold: expected a number or null, got {threshold!r}")
        reference = doc.get("reference", {})
        if not isinstance(reference, Mapping) or not all(
            v is None or isinstance(v, int | float) for v in reference.values()
        ):
            raise DataError(f"cbpe.reference: expected metric -> number, got {reference!r}")
        n_reference = doc.get("n_reference", 0)
        if not isinstance(n_reference, int) or n_reference < 0:
            raise DataError(f"cbpe.n_reference: expected a count, got {n_reference!r}")
        try:
            return cls(
                classes,
                calibrators,
                threshold=None if threshold is None else float(threshold),
                reference=reference,
                n_reference=n_reference,
            )
        except (SpecError, DataError) as exc:
            raise DataError(f"cbpe: {exc}") from None


def _calibrator(item: Any, where: str) -> Calibrator:
    if item is None:
        return None
    if not isinstance(item, Mapping) or "x" not in item or "y" not in item:
        raise DataError(f"{where}: expected null or an object with lists x and y, got {item!r}")
    try:
        x = np.asarray(item["x"], dtype=np.float64)
        y = np.asarray(item["y"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: x and y must be lists of numbers") from None
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise DataError(f"{where}: x and y must be non-empty lists of the same length")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError(f"{where}: x and y must be finite")
    if (np.diff(x) < 0).any() or (np.diff(y) < 0).any():
        raise DataError(f"{where}: isotonic breakpoints must be non-decreasing in x and y")
    if (y < 0).any() or (y > 1).any():
        raise DataError(f"{where}: calibrated values y must lie in [0, 1]")
    return x, y
