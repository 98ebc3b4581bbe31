"""Baseline Shapley values of rows on a version's ONNX graph, with numpy alone.

The server's ``POST /explain`` and monitoring's attribution drift run here:
no torch, no SHAP (which brings scikit-learn, scipy and pandas into a
process that holds ONNX Runtime and numpy only).

The game is the one Sundararajan and Najmi call *baseline Shapley*: the
value of a set ``S`` of features is the model's output on the row with the
features of ``S`` taken from ``x`` and the others from a baseline row ``b``.
Each sampled permutation switches the features from ``b`` to ``x`` one at a
time, and a feature is credited with the change of output it made; the
credits of one permutation telescope to ``f(x) - f(b)``, so the average over
permutations sums to it exactly, whatever their number (float rounding
aside). Permutations come in antithetic pairs (an order and its reverse),
which halves the variance of each value for the same cost. All the hybrid
rows of a row go to ONNX Runtime in a few large calls.

A feature is one raw input column; an image input is cut into at most
:data:`MAX_PATCHES` square patches of pixels, each one feature. The default
baseline is the training "middle" recorded by the version's OOD detector
(``ood.json``): each number's median, each category's most frequent value,
each image's mean pixel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import DataError

if TYPE_CHECKING:
    from mlcycle.registry._predictor import Predictor

__all__ = ["MAX_PATCHES", "ShapleyValues", "baseline_row", "shapley_values"]

MAX_PATCHES = 64  # features an image input is cut into
MAX_EVALUATIONS = 200_000  # hybrid rows per call of shapley_values (memory and time bound)
CHUNK = 8192  # hybrid rows per ONNX Runtime call

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class ShapleyValues:
    """Attributions of each row to each feature; ``values[i].sum() == output[i] - base[i]``.

    Attributes:
        features: the feature names: an input column, or ``"image[r0:r1, c0:c1]"``.
        values: ``[rows, features]`` credits, in the units of the explained output.
        base: the output on the baseline row (per row: the target may differ).
        output: the output on each row.
        target: the class whose probability is explained, per row (None: a regressor's value).
        permutations: permutations sampled per row.
    """

    features: list[str]
    values: Array
    base: Array
    output: Array
    target: list[str] | None
    permutations: int

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-able answer per row: attributions by feature, base, output, target."""
        records = []
        for i in range(len(self.values)):
            record: dict[str, Any] = {
                "attributions": dict(zip(self.features, self.values[i].tolist(), strict=True)),
                "base": float(self.base[i]),
                "output": float(self.output[i]),
            }
            if self.target is not None:
                record["target"] = self.target[i]
            records.append(record)
        return records


def baseline_row(predictor: Predictor, ood: Mapping[str, Any] | None) -> dict[str, Array]:
    """Feeds of one row in the middle of the training data.

    From the OOD detector's document when the version has one (median, most
    frequent category, mean image; a flag set when most training rows had it
    set); otherwise the middle of each number's
    training range and the first category of each categorical column.
    """
    numeric = {e["name"]: e for e in (ood or {}).get("numeric") or []}
    categorical = {e["name"]: e for e in (ood or {}).get("categorical") or []}
    image = (ood or {}).get("image")
    row: dict[str, Any] = {}
    for spec in predictor.signature["inputs"]:
        name, kind = spec["name"], spec["kind"]
        if image is not None and image.get("name") == name:
            row[name] = np.asarray(image["mean"], dtype=np.float32).reshape(1, *spec["shape"][1:])
        elif name in numeric:
            center = float(numeric[name]["center"])
            row[name] = [center >= 0.5 if kind == "boolean" else center]
        elif name in categorical:
            entry = categorical[name]
            frequency = list(entry["frequency"])[: len(entry["one_hot"])]
            row[name] = [entry["one_hot"][int(np.argmax(frequency))] if frequency else None]
        elif kind in ("numeric", "boolean") and spec.get("range"):
            low, high = spec["range"]
            middle = (low + high) / 2
            row[name] = [middle if kind == "numeric" else middle >= 0.5]
        elif spec.get("categories"):
            row[name] = [spec["categories"][0]]
        elif len(spec.get("shape") or ()) > 2:
            row[name] = np.zeros((1, *spec["shape"][1:]), dtype=np.float32)
        else:
            row[name] = [0.0 if kind in ("numeric", "boolean") else None]
    return dict(predictor.feeds(row))


def _features(feeds: Mapping[str, Array]) -> tuple[list[str], list[tuple[str, Array | None]]]:
    """Feature names, and per feature its input and pixel mask (None: the whole input)."""
    names: list[str] = []
    parts: list[tuple[str, Array | None]] = []
    for name, array in feeds.items():
        shape = array.shape[1:]
        cells = math.prod(shape)
        if cells <= 1:
            names.append(name)
            parts.append((name, None))
            continue
        if len(shape) >= 2:
            height, width = shape[-2], shape[-1]
            side = max(1, math.ceil(math.sqrt(height * width / MAX_PATCHES)))
            while math.ceil(height / side) * math.ceil(width / side) > MAX_PATCHES:
                side += 1
            for r in range(0, height, side):
                for c in range(0, width, side):
                    mask = np.zeros(shape, dtype=bool)
                    mask[..., r : r + side, c : c + side] = True
                    names.append(f"{name}[{r}:{min(r + side, height)}, {c}:{min(c + side, width)}]")
                    parts.append((name, mask))
        else:
            size = max(1, math.ceil(cells / MAX_PATCHES))
            for start in range(0, cells, size):
                mask = np.zeros(cells, dtype=bool)
                mask[start : start + size] = True
                names.append(f"{name}[{start}:{min(start + size, cells)}]")
                parts.append((name, mask.reshape(shape)))
    return names, parts


def _orders(features: int, permutations: int, rng: np.random.Generator) -> Array:
    """``[permutations, features]`` orders, in antithetic pairs (an order, then its reverse)."""
    half = [rng.permutation(features) for _ in range(max(1, permutations // 2))]
    return np.array([o for order in half for o in (order, order[::-1])], dtype=np.int64)


def shapley_values(
    predictor: Predictor,
    feeds: Mapping[str, Array],
    baseline: Mapping[str, Array],
    *,
    target: str | None = None,
    permutations: int = 16,
    seed: int = 0,
) -> ShapleyValues:
    """Baseline Shapley values of every row of ``feeds`` (see the module doc).

    Args:
        feeds: validated feeds (:meth:`Predictor.feeds`) of the rows to explain.
        baseline: feeds of one row (:func:`baseline_row`).
        target: the class whose probability is explained (default: each row's
            predicted class); ignored for a regressor.
        permutations: sampled per row, rounded up to an even number (pairs).

    Raises:
        DataError: an unknown target class, a baseline of other inputs, fewer
            than 2 permutations, or more hybrid rows than one call may run.
    """
    if permutations < 2:
        raise DataError(f"permutations: {permutations} is below 2 (one antithetic pair)")
    permutations += permutations % 2
    if set(baseline) != set(feeds):
        raise DataError(
            f"the baseline's inputs {sorted(baseline)} are not the rows' {sorted(feeds)}"
        )
    classes = predictor.classes
    if target is not None and classes is not None and target not in classes:
        raise DataError(f"target: {target!r} is not one of the classes {classes}")
    names, parts = _features(feeds)
    rows = len(next(iter(feeds.values())))
    per_row = permutations * (len(names) + 1)
    if rows * per_row > MAX_EVALUATIONS:
        raise DataError(
            f"{rows} rows x {permutations} permutations x {len(names) + 1} steps is "
            f"{rows * per_row:,} model evaluations, over the {MAX_EVALUATIONS:,} allowed: "
            "send fewer rows or ask for fewer permutations"
        )
    rng = np.random.default_rng(seed)
    orders = _orders(len(names), permutations, rng)
    # on[p, k, j]: at step k of permutation p, feature j is taken from the row.
    steps = len(names) + 1
    rank = np.empty_like(orders)
    rank[np.arange(len(orders))[:, None], orders] = np.arange(len(names))
    on = rank[:, None, :] < np.arange(steps)[None, :, None]  # [P, steps, F]
    on = on.reshape(-1, len(names))
    values = np.zeros((rows, len(names)))
    base, output = np.zeros(rows), np.zeros(rows)
    chosen: list[str] | None = [] if classes is not None else None
    for i in range(rows):
        hybrid: dict[str, Array] = {}
        for name, column in feeds.items():
            x, b = column[i : i + 1], baseline[name][:1]
            take = np.zeros((len(on), *x.shape[1:]), dtype=bool)
            for j, (part, mask) in enumerate(parts):
                if part == name:
                    take |= on[:, j].reshape(-1, *([1] * (x.ndim - 1))) & (
                        True if mask is None else mask[None]
                    )
            hybrid[name] = np.where(take, x, b).astype(column.dtype, copy=False)
        out = _outputs(predictor, hybrid, len(on))
        if classes is not None:
            probabilities = out
            label = target if target is not None else classes[int(np.argmax(probabilities[-1]))]
            assert chosen is not None
            chosen.append(label)
            g = probabilities[:, classes.index(label)]
        else:
            g = out
        g = g.astype(np.float64).reshape(permutations, steps)
        gains = np.diff(g, axis=1)  # [P, F]: the credit of the k-th feature switched
        credit = np.zeros((permutations, len(names)))
        np.put_along_axis(credit, orders, gains, axis=1)
        values[i] = credit.mean(axis=0)
        base[i], output[i] = g[0, 0], g[0, -1]
    return ShapleyValues(names, values, base, output, chosen, permutations)


def _outputs(predictor: Predictor, feeds: Mapping[str, Array], rows: int) -> Array:
    """Probabilities ``[rows, classes]`` or values ``[rows]``, in chunks of :data:`CHUNK`."""
    answers = []
    for start in range(0, rows, CHUNK):
        chunk = {name: array[start : start + CHUNK] for name, array in feeds.items()}
        result = predictor.run(chunk)
        answer = result.probabilities if result.values is None else result.values
        assert answer is not None
        answers.append(answer)
    return np.concatenate(answers)
