"""Fitting the out-of-distribution detector a model version carries (``ood.json``).

The detector itself, its document and its scoring, is numpy only and lives
with the model artifact (:class:`mlcycle.registry.OODDetector`), so that a
server scores requests without importing monitoring. Fitting it needs scipy
(the Yeo-Johnson exponents) and happens once, at registration: numeric
columns get their range, centre, spread and power transform; categorical
columns their categories and one-hot frequencies; an image its per-pixel
mean and one global scale. The encoded training rows give the principal
components (Ledoit-Wolf shrunk variances), and the threshold is the
``quantile`` of the scores of the *validation* rows, which the fit never saw.

Example:
    >>> import numpy as np, pyarrow as pa
    >>> rng = np.random.default_rng(0)
    >>> def rows(n):
    ...     a = rng.normal(size=n)
    ...     return pa.table({"a": a, "b": a + rng.normal(scale=0.1, size=n)})
    >>> signature = {"inputs": [{"name": "a", "kind": "numeric"},
    ...                         {"name": "b", "kind": "numeric"}]}
    >>> detector = fit_ood_detector(rows(500), rows(500), signature, quantile=0.99)
    >>> scores = detector.score({"a": np.array([0.5, 1.0]), "b": np.array([0.5, -1.0])})
    >>> scores.flagged.tolist()  # the second row breaks the a ~ b correlation
    [False, True]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mlcycle.errors import DataError
from mlcycle.registry import OODDetector, to_feeds
from mlcycle.registry._ood import (
    FORMAT,
    LAMBDA_RANGE,
    encode_rows,
    power_transform,
    round_stored,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["fit_ood_detector"]

MAX_COMPONENTS = 50
MAX_ONE_HOT = 32  # one-hot columns per categorical input; rarer categories share one more
MAX_CATEGORIES = 1000  # beyond this many, unseen categories are not flagged (ids, free text)
MAX_FIT_ROWS = 20_000  # rows the covariance is estimated from (ranges use all of them)

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


def fit_ood_detector(
    train: pa.Table,
    validation: pa.Table,
    signature: Mapping[str, Any],
    *,
    quantile: float = 0.995,
    margin: float = 0.5,
    seed: int = 0,
) -> OODDetector:
    """Fit on ``train``'s rows; set the threshold at ``quantile`` of ``validation``'s scores.

    Args:
        train: the training rows (other columns, such as the target, are ignored).
        validation: rows the model did not train on, for an honest threshold.
        signature: the model version's signature (its ``inputs``).
        quantile: the share of ordinary rows expected under the threshold.
        margin: how far past each end of a number's training range, in
            range widths, a value may lie before it is out of range.
        seed: for the row sample the covariance is estimated from.

    Raises:
        DataError: an input column is missing or unusable, or a table is empty.
    """
    if not 0.5 <= quantile < 1:
        raise DataError(f"quantile {quantile}: expected a share in [0.5, 1)")
    if not 0 <= margin <= 100:
        raise DataError(f"margin {margin}: expected range widths in [0, 100]")
    specs = list(signature.get("inputs", []))
    images = [s for s in specs if s.get("kind") == "image"]
    if not specs:
        raise DataError("the signature has no inputs to fit an OOD detector on")
    if len(images) > 1:
        raise DataError(f"{len(images)} image inputs: the OOD detector takes at most one")
    if train.num_rows < 2:
        raise DataError(f"{train.num_rows} training rows: the OOD detector needs at least 2")
    if validation.num_rows == 0:
        raise DataError("the validation table has no rows: the threshold needs unseen rows")
    feeds = _table_feeds(train, signature)
    n = train.num_rows
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, MAX_FIT_ROWS, replace=False)) if n > MAX_FIT_ROWS else None
    numeric = [
        _fit_number(s["name"], np.asarray(feeds[s["name"]], np.float64), s["kind"] == "boolean")
        for s in specs
        if s["kind"] in ("numeric", "boolean")
    ]
    categorical = [_fit_category(s["name"], feeds[s["name"]]) for s in specs
                   if s["kind"] == "categorical"]  # fmt: skip
    image = None
    if images:
        spec = images[0]
        image = _fit_image(spec["name"], list(spec["shape"][1:]), feeds[spec["name"]], sample)
    document: dict[str, Any] = {
        "format": FORMAT,
        "quantile": float(quantile),
        "margin": float(margin),
        "threshold": 0.0,
        "numeric": numeric,
        "categorical": categorical,
        "image": image,
        "components": np.zeros((0, 0)),
        "variances": [],
        "residual_variance": 1.0,
    }
    if sample is not None:
        feeds = {name: np.asarray(values)[sample] for name, values in feeds.items()}
    z, _ = encode_rows(document, feeds)
    del feeds
    document.update(_principal_space(z))
    del z
    document["rows"] = {"train": n, "validation": validation.num_rows}
    document = OODDetector(document).to_dict()  # the parameters exactly as they will be stored
    unseen = _table_feeds(validation, signature)
    scores, _ = _score_in_chunks(OODDetector(document), unseen)
    document["threshold"] = float(np.quantile(scores, quantile))
    detector = OODDetector(document)
    _, flagged = _score_in_chunks(detector, unseen)
    detector.facts["validation_flagged"] = round(float(flagged.mean()), 6)
    return detector


def _fit_number(name: str, values: Floats, boolean: bool) -> dict[str, Any]:
    """A numeric or boolean input: range, centre and spread, Yeo-Johnson exponent, scale."""
    gaps = np.isnan(values)
    present = values[~gaps]
    entry: dict[str, Any] = {
        "name": name,
        "center": 0.0,
        "spread": 1.0,
        "lambda": 1.0,
        "mean": 0.0,
        "scale": 1.0,
        "min": float(present.min()) if len(present) else None,
        "max": float(present.max()) if len(present) else None,
        "missing_seen": bool(gaps.any()),
    }
    if len(present) < 2 or present.min() == present.max():
        entry["center"] = float(present[0]) if len(present) else 0.0
        return entry
    center, spread = float(np.median(present)), float(present.std())
    lam = 1.0
    if not boolean and len(np.unique(present[:1000])) > 2:
        from scipy import stats

        u = (present[:: max(1, len(present) // MAX_FIT_ROWS)] - center) / spread
        with np.errstate(all="ignore"):
            fitted = float(stats.yeojohnson_normmax(u))
        lam = float(np.clip(fitted, *LAMBDA_RANGE)) if math.isfinite(fitted) else 1.0
    # the transform's parameters as stored, so that mean and scale are those of what is scored
    entry.update(
        {
            "center": round_stored(center),
            "spread": round_stored(spread),
            "lambda": round_stored(lam),
        }
    )
    y = power_transform(entry, present)
    std = float(y.std())
    entry.update(mean=round_stored(y.mean()), scale=round_stored(std if std > 0 else 1.0))
    return entry


def _fit_category(name: str, values: Sequence[Any]) -> dict[str, Any]:
    """A categorical input: its categories, one-hot over the most frequent, their frequencies."""
    text = ["" if v is None else str(v) for v in values]
    categories, counts = np.unique(np.array(text, dtype=object), return_counts=True)
    order = sorted(range(len(categories)), key=lambda i: (-counts[i], categories[i]))
    one_hot = [str(categories[i]) for i in order[:MAX_ONE_HOT]]
    other = len(categories) > MAX_ONE_HOT
    frequency = [counts[i] / len(text) for i in order[:MAX_ONE_HOT]]
    if other:
        frequency.append(1.0 - sum(frequency))
    return {
        "name": name,
        "categories": sorted(map(str, categories)) if len(categories) <= MAX_CATEGORIES else None,
        "one_hot": one_hot,
        "other": other,
        "frequency": round_stored(np.array(frequency)),
    }


def _fit_image(
    name: str, shape: list[int], images: NDArray[Any], sample: NDArray[np.int64] | None
) -> dict[str, Any]:
    """An image input: its pixel range, per-pixel mean and one global scale."""
    flat = images.reshape(len(images), -1)
    rows = flat if sample is None else flat[sample]
    mean = rows.mean(axis=0, dtype=np.float64)
    rms = math.sqrt(max(float(np.mean(rows.var(axis=0, dtype=np.float64))), 0.0))
    return {
        "name": name,
        "shape": shape,
        "mean": round_stored(mean),
        "scale": round_stored(rms if rms > 0 else 1.0),
        "min": float(flat.min()),
        "max": float(flat.max()),
    }


def _score_in_chunks(
    detector: OODDetector, feeds: Mapping[str, Any], rows: int = 8192
) -> tuple[Floats, Bools]:
    """Scores and flags of many rows, a bounded number at a time."""
    n = len(next(iter(feeds.values())))
    parts = [
        detector.score({k: v[i : i + rows] for k, v in feeds.items()}) for i in range(0, n, rows)
    ]
    return np.concatenate([p.score for p in parts]), np.concatenate([p.flagged for p in parts])


def _table_feeds(table: pa.Table, signature: Mapping[str, Any]) -> dict[str, Any]:
    names = [s["name"] for s in signature["inputs"]]
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise DataError(f"OOD detector: the table lacks input column {missing[0]!r}")
    return to_feeds(table.select(names), signature)


def _principal_space(z: Floats) -> dict[str, Any]:
    """Top components of the encoded rows ``z``, with Ledoit-Wolf shrunk variances.

    The columns are centred on the training rows by construction (standardised
    numbers, one-hot minus frequency, pixels minus their mean).
    """
    n, d = z.shape
    covariance = (z.T @ z) / n
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues[::-1], 0.0, None)
    eigenvectors = eigenvectors[:, ::-1]
    mu = float(eigenvalues.sum()) / d
    if mu <= 0:
        raise DataError("every training input is constant: nothing to fit an OOD detector on")
    frobenius = float((eigenvalues**2).sum())
    delta = (frobenius - d * mu * mu) / d
    norms = np.einsum("ij,ij->i", z, z)
    beta = min((float((norms * norms).mean()) - frobenius) / (d * n), delta)
    shrinkage = float(np.clip(beta / delta, 0.0, 1.0)) if delta > 0 else 1.0
    shrunk = (1 - shrinkage) * eigenvalues + shrinkage * mu
    k = max(1, min(MAX_COMPONENTS, d, n - 1))
    rest = shrunk[k:]
    residual = float(rest.mean()) if len(rest) else mu
    return {
        "components": eigenvectors[:, :k].T,
        "variances": shrunk[:k],
        "residual_variance": max(residual, 1e-9 * mu),
        "shrinkage": round(shrinkage, 6),
    }
