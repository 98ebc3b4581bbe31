"""Out-of-distribution and adversarial inputs: a per-row anomaly score, cheap enough to serve.

Every input becomes one vector. A numeric column is scaled by its training
deviation, made closer to normal by a Yeo-Johnson power transform fitted on
the training rows (skewed, heavy-tailed columns otherwise dominate the
distance) and standardised; a gap takes the mean. A categorical column is
one-hot over its most frequent training categories; an image's pixels are
centred per pixel and scaled by one global deviation.

The score is probabilistic PCA's distance in that space: the Mahalanobis
distance over the top principal components of the training rows (at most
50) plus the residual off them divided by the average variance of the
discarded components, all over the dimension, so a typical row scores near
1. Rows whose columns break the training correlations (the mark of large
noise and of gradient attacks such as FGSM) and images unlike any training
image land far off. The variances are Ledoit-Wolf shrunk towards their
mean, so a few hundred rows or constant columns never make it singular.

The flag threshold is the ``quantile`` of the scores of the *validation*
rows, which the fit never saw, so the share of ordinary rows flagged is
honest (about ``1 - quantile``). Independently of the score, a row is *out
of range* when a number lies outside the training range widened by
``margin`` range widths on each side, a category was never seen in training,
a number is missing where training had no gaps, or a pixel lies outside the
training pixel range; such rows are always flagged.

The fitted detector is a small JSON document (``mlcycle-ood/1``) stored with
the model version. This module reads and scores it with numpy alone, so a
server loads it without the monitoring stack; fitting it (scipy, at
registration) is :func:`mlcycle.monitor.fit_ood_detector`, which builds the
document through :func:`encode_rows`, :func:`power_transform` and
:func:`round_stored` so that fitting and scoring share one definition of each.

Example:
    >>> import numpy as np
    >>> detector = OODDetector.from_dict({
    ...     "format": "mlcycle-ood/1", "quantile": 0.99, "margin": 0.5, "threshold": 3.0,
    ...     "numeric": [{"name": "a", "center": 0.0, "spread": 1.0, "lambda": 1.0,
    ...                  "mean": 0.0, "scale": 1.0, "min": -3.0, "max": 3.0,
    ...                  "missing_seen": False}],
    ...     "categorical": [], "image": None,
    ...     "components": [[1.0]], "variances": [1.0], "residual_variance": 1.0})
    >>> detector.score({"a": np.array([0.5, 2.5, 9.0])}).flagged.tolist()
    [False, True, True]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlcycle.errors import DataError

__all__ = [
    "FORMAT",
    "LAMBDA_RANGE",
    "OODDetector",
    "OODScores",
    "encode_rows",
    "power_transform",
    "round_stored",
]

FORMAT = "mlcycle-ood/1"
LAMBDA_RANGE = (-3.0, 5.0)  # Yeo-Johnson exponents kept to this (no overflow far out)
_LOG_CLIP = math.log1p(1e4)  # |scaled number| capped here before the power transform

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True)
class OODScores:
    """The detector's verdict on a batch of rows.

    Attributes:
        score: the anomaly score per row (higher is stranger; about 1 for a
            typical training row).
        out_of_range: a value outside the training ranges or categories, or a
            gap where training had none.
        flagged: ``score > threshold`` or out of range.
        threshold: the score above which a row is flagged.
    """

    score: Floats
    out_of_range: Bools
    flagged: Bools
    threshold: float

    def __len__(self) -> int:
        return len(self.score)

    def share(self) -> float:
        """The share of rows flagged (0 for no rows)."""
        return float(self.flagged.mean()) if len(self.flagged) else 0.0


class _Bad(DataError):
    def __init__(self, message: str) -> None:
        super().__init__(f"OOD document: {message}")


def round_stored(values: Any) -> Any:
    """Floats as the document stores them: 9 significant digits (nested lists for arrays).

    Short JSON, and idempotent: a stored value rounds to itself.
    """
    if values is None:
        return None
    if np.ndim(values) == 0:
        return float(f"{float(values):.9g}")
    array = np.asarray(values, dtype=np.float64)
    flat = [float(f"{v:.9g}") for v in array.ravel().tolist()]
    if array.ndim == 2:
        width = array.shape[1]
        return [flat[i : i + width] for i in range(0, len(flat), width)]
    return flat


def _array(value: Any, where: str, shape: tuple[int, ...] | None = None) -> Floats:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Bad(f"{where} is not an array of numbers") from None
    if shape is not None and array.shape != shape:
        raise _Bad(f"{where} has shape {list(array.shape)}, expected {list(shape)}")
    if not np.isfinite(array).all():
        raise _Bad(f"{where} holds NaN or infinite values")
    return array


def _number(value: Any, where: str, *, optional: bool = False) -> float:
    if value is None and optional:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Bad(f"{where} is {value!r}, expected a finite number")
    return float(value)


def _fields(entry: Any, where: str, names: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping):
        raise _Bad(f"{where} is a {type(entry).__name__}, expected an object")
    missing = [name for name in names if name not in entry]
    if missing:
        raise _Bad(f"{where} lacks {', '.join(map(repr, missing))}".lstrip())
    return entry


# -- the blocks of the encoded vector --------------------------------------------------


class _Numbers:
    """Numeric and boolean inputs: range checks, power transform, standardisation."""

    FIELDS = ("name", "center", "spread", "lambda", "mean", "scale", "min", "max", "missing_seen")
    ROUNDED = ("center", "spread", "lambda", "mean", "scale")  # min and max are kept exact

    def __init__(self, entries: Sequence[Mapping[str, Any]], margin: float) -> None:
        self.entries = [dict(e) for e in entries]
        self.names = [str(e["name"]) for e in entries]

        def column(key: str, optional: bool = False) -> Floats:
            values = [
                _number(e[key], f"numeric input {e['name']!r}: {key!r}", optional=optional)
                for e in entries
            ]
            return np.array(values, dtype=np.float64)

        self.center = column("center")
        spread, scale = column("spread"), column("scale")
        for i in np.flatnonzero((spread <= 0) | (scale <= 0)):
            raise _Bad(f"numeric input {self.names[i]!r}: the spread and scale must be positive")
        self.inv_spread, self.inv_scale = 1.0 / spread, 1.0 / scale
        lam = np.clip(column("lambda"), *LAMBDA_RANGE)
        self.identity = bool((lam == 1.0).all())
        # an exponent of exactly 0 (or 2 below zero) is the log: nudged, it is the same to 1e-6
        self.lam_pos = np.where(np.abs(lam) < 1e-6, 1e-6, lam)
        self.lam_neg = np.where(np.abs(2.0 - lam) < 1e-6, 1e-6, 2.0 - lam)
        self.mean = column("mean")
        low, high = column("min", True), column("max", True)
        width = np.nan_to_num(high - low) * margin
        low = np.where(np.isnan(low), -np.inf, low - width)
        high = np.where(np.isnan(high), np.inf, high + width)
        self.middle = np.where(np.isfinite(low + high), (low + high) / 2, 0.0)
        self.half = np.where(np.isfinite(low + high), (high - low) / 2, np.inf)
        self.gaps_seen = np.array([bool(e["missing_seen"]) for e in entries], dtype=bool)

    def __len__(self) -> int:
        return len(self.names)

    def power(self, x: Floats) -> Floats:
        """Scaled numbers through each column's Yeo-Johnson transform."""
        u = (x - self.center) * self.inv_spread
        if self.identity:
            return u
        a = np.log1p(np.abs(u))
        np.minimum(a, _LOG_CLIP, out=a)  # so far out, only the flag matters: no overflow
        lam = np.where(u >= 0, self.lam_pos, self.lam_neg)
        a *= lam
        y = np.expm1(a, out=a)
        y /= lam
        return np.copysign(y, u, out=y)

    def encode(self, x: Floats, out: Bools, z: Floats) -> None:
        """Write the standardised columns into ``z``; mark rows out of range in ``out``."""
        gaps = None
        if not math.isfinite(float(x.sum())):  # one cheap test for the rare gap
            gaps = np.isnan(x)
            out |= (gaps & ~self.gaps_seen).any(axis=1)
            x = np.where(gaps, self.center, x)
        out |= (np.abs(x - self.middle) > self.half).any(axis=1)
        np.subtract(self.power(x), self.mean, out=z)
        z *= self.inv_scale
        if gaps is not None:
            z[gaps] = 0.0

    def to_entries(self) -> list[dict[str, Any]]:
        return [{**e, **{k: round_stored(e[k]) for k in self.ROUNDED}} for e in self.entries]


class _Category:
    """One categorical input: known categories, one-hot over the most frequent."""

    FIELDS = ("name", "categories", "one_hot", "other", "frequency")

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.name = str(entry["name"])
        self.categories = None if entry["categories"] is None else list(entry["categories"])
        self.one_hot = [str(v) for v in entry["one_hot"]]
        self.other = bool(entry["other"])
        self.width = len(self.one_hot) + self.other
        self.frequency = _array(
            entry["frequency"], f"categorical input {self.name!r}: 'frequency'", (self.width,)
        )
        self.slots: dict[Any, int] = {v: i for i, v in enumerate(self.one_hot)}
        for value in self.categories or ():
            self.slots.setdefault(str(value), self.width - 1)  # seen but rare: the shared column
        if "" in self.slots:
            self.slots[None] = self.slots[""]  # a gap as read back from the log
        self.checked = self.categories is not None

    def encode(self, column: Any, out: Bools, z: Floats) -> None:
        n = len(out)
        values = column.tolist() if isinstance(column, np.ndarray) else list(column)
        if len(values) != n:
            raise DataError(f"column {self.name!r}: {len(values)} values, expected {n}")
        if n and isinstance(values[0], list):  # [n, 1]
            values = [v[0] if len(v) == 1 else None for v in values]
        slots = self.slots
        codes = np.fromiter((slots.get(v, -1) for v in values), dtype=np.int64, count=n)
        z[:] = -self.frequency
        known = codes >= 0
        if self.other and not self.checked:
            codes[~known] = self.width - 1
            known[:] = True
        z[np.flatnonzero(known), codes[known]] += 1.0
        if self.checked:
            out |= ~known

    def to_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "categories": self.categories,
            "one_hot": self.one_hot,
            "other": self.other,
            "frequency": round_stored(self.frequency),
        }


class _Image:
    """One image input: pixel range, per-pixel mean, one global scale."""

    FIELDS = ("name", "shape", "mean", "scale", "min", "max")

    def __init__(self, entry: Mapping[str, Any]) -> None:
        self.name = str(entry["name"])
        self.shape = [int(s) for s in entry["shape"]]
        self.pixels = int(np.prod(self.shape))
        self.mean = _array(entry["mean"], "the image's mean", (self.pixels,))
        scale = _number(entry["scale"], "the image's scale")
        if scale <= 0:
            raise _Bad("the image's scale is not positive")
        self.scale = scale
        self.low = _number(entry["min"], "the image's min")
        self.high = _number(entry["max"], "the image's max")

    def encode(self, column: Any, out: Bools, z: Floats) -> None:
        n = len(out)
        try:
            image = np.asarray(column, dtype=np.float64).reshape(n, self.pixels)
        except ValueError:
            raise DataError(
                f"column {self.name!r}: expected {n} images of {self.pixels} pixels, "
                f"got shape {list(np.shape(column))}"
            ) from None
        gaps = np.isnan(image)
        if gaps.any():
            out |= gaps.any(axis=1)
            image = np.where(gaps, self.mean, image)
        out |= ((image < self.low) | (image > self.high)).any(axis=1)
        np.multiply(image - self.mean, 1.0 / self.scale, out=z)

    def to_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "mean": round_stored(self.mean),
            "scale": round_stored(self.scale),
            "min": self.low,
            "max": self.high,
        }


# -- the detector ------------------------------------------------------------------------


class OODDetector:
    """Scores rows against the training distribution; fitted once, stored as JSON.

    Build it with :meth:`from_dict` (the constructor takes a document that
    :meth:`from_dict` has checked); :func:`mlcycle.monitor.fit_ood_detector` fits one.
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.threshold = float(document["threshold"])
        self.quantile = float(document["quantile"])
        self.margin = float(document["margin"])
        # informative only: rows fitted on, the shrinkage, the share of validation rows flagged
        self.facts = {k: document[k] for k in ("rows", "shrinkage", "validation_flagged")
                      if k in document}  # fmt: skip
        blocks = _Blocks.of(document)
        self.inputs = blocks.inputs
        self.dimension = blocks.width
        components = _array(document["components"], "'components'")
        if components.ndim != 2 or components.shape[1] != self.dimension or not len(components):
            raise _Bad(
                f"'components' has shape {list(components.shape)}, expected [k, "
                f"{self.dimension}] (one row per component, one column per encoded value)"
            )
        k = components.shape[0]
        variances = _array(document["variances"], "'variances'", (k,))
        residual = _number(document["residual_variance"], "'residual_variance'")
        if (variances <= 0).any() or residual <= 0:
            raise _Bad("the variances must be positive")
        self._components = components
        self._variances = variances
        self._residual = residual
        self._projection = np.ascontiguousarray(components.T)  # [d, k]
        # score = (sum_k t_k^2 / v_k + (|z|^2 - sum_k t_k^2) / residual) / d, regrouped
        inv_residual = 1.0 / residual if k < self.dimension else 0.0
        self._weights = (1.0 / variances - inv_residual) / self.dimension
        self._norm_weight = inv_residual / self.dimension
        self._blocks = blocks

    # -- storage -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able document (``{"format": "mlcycle-ood/1", ...}``)."""
        return {
            "format": FORMAT,
            "quantile": self.quantile,
            "margin": self.margin,
            "threshold": self.threshold,
            **self.facts,
            "numeric": self._blocks.numbers.to_entries(),
            "categorical": [c.to_entry() for c in self._blocks.categories],
            "image": None if self._blocks.image is None else self._blocks.image.to_entry(),
            "components": round_stored(self._components),
            "variances": round_stored(self._variances),
            "residual_variance": round_stored(self._residual),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OODDetector:
        """A detector from its :meth:`to_dict` document.

        Raises:
            DataError: the document is not an ``mlcycle-ood/1`` document, or is
                incomplete or inconsistent; the message says what is wrong.
        """
        if not isinstance(data, Mapping):
            raise _Bad(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise _Bad(f"format {data.get('format')!r}, expected {FORMAT!r}")
        _fields(data, "", ("quantile", "margin", "threshold", "numeric",
                                       "categorical", "image", "components", "variances",
                                       "residual_variance"))  # fmt: skip
        for key in ("quantile", "margin", "threshold"):
            _number(data[key], repr(key))
        for key, fields in (("numeric", _Numbers.FIELDS), ("categorical", _Category.FIELDS)):
            if not isinstance(data[key], list):
                raise _Bad(f"{key!r} is a {type(data[key]).__name__}, expected a list")
            for i, entry in enumerate(data[key]):
                _fields(entry, f"{key}[{i}]", fields)
        if data["image"] is not None:
            _fields(data["image"], "'image'", _Image.FIELDS)
        try:
            return cls(data)
        except DataError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise _Bad(f"malformed ({type(exc).__name__}: {exc})") from None

    # -- scoring ---------------------------------------------------------------------

    def score(self, columns: Mapping[str, Any]) -> OODScores:
        """Score rows given as columns: the server's feeds, or 1-D columns read from the log.

        Numbers may be ``[n]`` or ``[n, 1]``, categories ``[n]`` strings
        (``None`` or ``""`` for a gap), an image ``[n, H, W]`` or ``[n, H*W]``.
        Other columns are ignored.

        Raises:
            DataError: an input column is missing, or holds the wrong number of values.
        """
        z, out = self._blocks.encode(columns)
        t = z @ self._projection
        t *= t
        score = t @ self._weights
        if self._norm_weight:
            z *= z
            score += z.sum(axis=1) * self._norm_weight
            np.maximum(score, 0.0, out=score)  # rounding, when the residual is ~0
        return OODScores(score, out, (score > self.threshold) | out, self.threshold)

    def __repr__(self) -> str:
        return (
            f"OODDetector(inputs={len(self.inputs)}, dimension={self.dimension}, "
            f"components={self._projection.shape[1]}, threshold={self.threshold:.4g})"
        )


class _Blocks:
    """The encoder: columns to the ``[n, d]`` vectors the components act on."""

    def __init__(
        self, numbers: _Numbers, categories: list[_Category], image: _Image | None
    ) -> None:
        self.numbers, self.categories, self.image = numbers, categories, image
        self.inputs = [*numbers.names, *(c.name for c in categories)]
        self.inputs += [image.name] if image is not None else []
        self.width = len(numbers) + sum(c.width for c in categories)
        self.width += image.pixels if image is not None else 0
        self._needed = frozenset(self.inputs)

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> _Blocks:
        image = document["image"]
        return cls(
            _Numbers(document["numeric"], document["margin"]),
            [_Category(c) for c in document["categorical"]],
            None if image is None else _Image(image),
        )

    def encode(self, columns: Mapping[str, Any]) -> tuple[Floats, Bools]:
        """The encoded rows and which of them are out of range."""
        try:
            n = len(columns[self.inputs[0]])
        except KeyError:
            n = -1
        if n < 0 or not self._needed <= columns.keys():
            missing = next(name for name in self.inputs if name not in columns)
            raise DataError(
                f"missing input column {missing!r}: the OOD detector takes "
                + ", ".join(self.inputs)
            )
        z = np.empty((n, self.width), dtype=np.float64)
        out = np.zeros(n, dtype=bool)
        p = len(self.numbers)
        if p:
            self.numbers.encode(_number_matrix(self.numbers.names, columns, n), out, z[:, :p])
        offset = p
        for category in self.categories:
            category.encode(columns[category.name], out, z[:, offset : offset + category.width])
            offset += category.width
        if self.image is not None:
            self.image.encode(columns[self.image.name], out, z[:, offset:])
        return z, out


def _number_matrix(names: list[str], columns: Mapping[str, Any], n: int) -> Floats:
    """The numeric inputs as ``[n, p]`` float64, in one conversion when they allow it."""
    block = getattr(columns, "block", None)  # the server's feeds: already one [p, n] array
    if block is not None and block.shape == (len(names), n) and list(columns) == names:
        matrix: Floats = block.T.astype(np.float64)
        return matrix
    try:
        flat = np.concatenate([columns[name] for name in names], axis=None, dtype=np.float64)
    except (ValueError, TypeError):  # values that are not numbers
        flat = None
    if flat is not None and flat.size == n * len(names):
        return flat.reshape(len(names), n).T
    matrix = np.empty((n, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        try:
            column = np.asarray(columns[name], dtype=np.float64)
        except (ValueError, TypeError):
            raise DataError(f"column {name!r}: expected numbers") from None
        if column.size != n:
            raise DataError(f"column {name!r}: {column.size} values, expected one per row ({n})")
        matrix[:, j] = column.ravel()
    return matrix


def encode_rows(document: Mapping[str, Any], columns: Mapping[str, Any]) -> tuple[Floats, Bools]:
    """Rows as the ``[n, d]`` vectors a detector's components act on, and which are out of range.

    ``document`` needs only the per-input entries (``numeric``, ``categorical``,
    ``image``) and ``margin``: fitting encodes the training rows with it
    before the components exist.
    """
    return _Blocks.of(document).encode(columns)


def power_transform(entry: Mapping[str, Any], values: Floats) -> Floats:
    """One numeric input's ``values`` scaled and through its Yeo-Johnson transform, as scored."""
    return _Numbers([entry], 0.0).power(np.asarray(values, np.float64)[:, None])[:, 0]
