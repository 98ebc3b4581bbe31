"""Model-agnostic attributions: SHAP's permutation explainer on the version's ONNX graph.

For versions without PyTorch weights (a compressed int8 variant answers
through ONNX Runtime only), Shapley values are estimated by SHAP's
``PermutationExplainer``: each permutation of the features adds them one by
one to a background row and then takes them away, so each feature's credit
telescopes and the attributions of a row sum *exactly* (up to float
rounding, :data:`ADDITIVITY_ATOL`) to ``f(x) - E[f]``, the expectation over
the background rows. More permutations lower the variance of each value,
never that sum.

SHAP's maskers do arithmetic on a float matrix, so the rows become one: a
number column as itself (a missing value as its training mean, which is what
the graph imputes), a category as its vocabulary code (0: missing or
unseen), an image as one feature per pixel. The model function turns such a
matrix back into the graph's feeds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import MlcycleError

if TYPE_CHECKING:
    from mlcycle.registry import Predictor

__all__ = ["ADDITIVITY_ATOL", "FeatureMatrix", "ShapOutcome", "shap_permutation"]

# |sum(values) - (f(x) - E[f])| for probabilities or values of size ~1: the
# graph answers float32; the telescoping sum adds 2M differences of them.
ADDITIVITY_ATOL = 1e-5


def _import_shap() -> Any:
    try:
        with warnings.catch_warnings():
            # shap imports its plotting module, whose colour maps use matplotlib calls
            # matplotlib has marked for deprecation: nothing here draws with them
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            import shap
    except ImportError as exc:  # pragma: no cover - shap is a dependency of mlcycle
        raise MlcycleError(
            "method 'shap' needs the shap package: pip install 'shap>=0.51'"
        ) from exc
    return shap


@dataclass(frozen=True)
class FeatureMatrix:
    """How the graph's inputs map to the columns of a float matrix, and back."""

    inputs: tuple[dict[str, Any], ...]
    widths: tuple[int, ...]
    means: dict[str, float]  # numeric/boolean column -> training mean (imputes NaN)

    @classmethod
    def of(cls, signature: dict[str, Any], means: dict[str, float]) -> FeatureMatrix:
        inputs = tuple(signature["inputs"])
        widths = tuple(
            math.prod(spec["shape"][1:]) if spec["kind"] == "image" else 1 for spec in inputs
        )
        return cls(inputs, widths, means)

    @property
    def size(self) -> int:
        return sum(self.widths)

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for spec, width in zip(self.inputs, self.widths, strict=True):
            out[spec["name"]] = slice(start, start + width)
            start += width
        return out

    def encode(self, feeds: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        n = len(next(iter(feeds.values())))
        out = np.empty((n, self.size), dtype=np.float64)
        for spec, where in zip(self.inputs, self.slices().values(), strict=True):
            name, values = spec["name"], feeds[spec["name"]]
            if spec["kind"] == "categorical":
                index = {c: i + 1 for i, c in enumerate(spec.get("categories") or [])}
                out[:, where] = np.array([index.get(str(v), 0) for v in values])[:, None]
            elif spec["kind"] == "image":
                out[:, where] = np.asarray(values, dtype=np.float64).reshape(n, -1)
            else:
                column = np.asarray(values, dtype=np.float64)
                out[:, where] = np.where(np.isnan(column), self.means[name], column)[:, None]
        return out

    def decode(self, matrix: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
        n = matrix.shape[0]
        feeds: dict[str, np.ndarray[Any, Any]] = {}
        for spec, where in zip(self.inputs, self.slices().values(), strict=True):
            block = matrix[:, where]
            if spec["kind"] == "categorical":
                vocabulary = np.array(["", *(spec.get("categories") or [])], dtype=object)
                codes = np.clip(np.rint(block[:, 0]).astype(np.int64), 0, len(vocabulary) - 1)
                feeds[spec["name"]] = vocabulary[codes]
            elif spec["kind"] == "image":
                shape = (n, *spec["shape"][1:])
                feeds[spec["name"]] = np.ascontiguousarray(block.reshape(shape), dtype=np.float32)
            else:
                feeds[spec["name"]] = np.ascontiguousarray(block[:, 0], dtype=np.float32)
        return feeds


@dataclass(frozen=True)
class ShapOutcome:
    """Per row and feature of the matrix: Shapley values; f(x) and E[f] per row."""

    values: np.ndarray[Any, Any]  # (rows, features)
    outputs: np.ndarray[Any, Any]
    expected: np.ndarray[Any, Any]
    evaluations: int  # model rows evaluated per explained row


def shap_permutation(
    predictor: Predictor,
    features: FeatureMatrix,
    rows: np.ndarray[Any, Any],
    background: np.ndarray[Any, Any],
    targets: list[int] | None,
    *,
    permutations: int,
    seed: int,
) -> ShapOutcome:
    """Shapley values of the probability of ``targets`` (or the value) for each row of ``rows``."""
    shap = _import_shap()

    def model(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        answer = predictor.run(features.decode(matrix))
        out = answer.values if predictor.task == "regression" else answer.probabilities
        assert out is not None
        return np.asarray(out, dtype=np.float64)

    masker = shap.maskers.Independent(background, max_samples=len(background))
    explainer = shap.explainers.Permutation(model, masker, seed=seed)
    max_evals = permutations * (2 * features.size + 1)
    explained = explainer(rows, max_evals=max_evals, silent=True)
    values = np.asarray(explained.values, dtype=np.float64)
    expected = np.asarray(explained.base_values, dtype=np.float64)
    outputs = model(rows)
    n = rows.shape[0]
    if targets is not None:
        index = np.arange(n)
        values = values[index, :, targets]
        expected = expected[index, targets]
        outputs = outputs[index, targets]
    return ShapOutcome(
        values=values,
        outputs=outputs.reshape(n),
        expected=expected.reshape(n),
        evaluations=max_evals * len(background),
    )
