"""The parity check: does the exported ONNX graph answer as the PyTorch network does?

Registration runs it on the test rows before anything is stored: a graph
that disagrees is never registered. It needs torch (for the network's own
answers), so it lives with training; its verdict is a small dict that the
registry stores in ``metrics.json`` and the model card words
(:func:`mlcycle.registry.describe_parity`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import ParityError
from mlcycle.train._features import encode
from mlcycle.train._loop import predict

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.registry import Predictor
    from mlcycle.train._features import FeatureLayout
    from mlcycle.train._models import MlcycleNet

__all__ = ["PARITY_ATOL", "check_parity", "verify_export"]

PARITY_ATOL = 1e-4


def verify_export(
    model: MlcycleNet,
    layout: FeatureLayout,
    predictor: Predictor,
    table: pa.Table,
    *,
    atol: float = PARITY_ATOL,
) -> dict[str, Any]:
    """The parity verdict of ``predictor`` (the exported graph) against ``model`` on ``table``.

    Raises:
        ParityError: saying by how much and where they differ.
    """
    reference = predict(model, encode(table, layout), model.target_mean.device).numpy()
    return check_parity(reference, predictor, table, atol=atol)


def check_parity(
    reference: np.ndarray[Any, Any],
    predictor: Predictor,
    table: pa.Table,
    *,
    atol: float = PARITY_ATOL,
    native: str = "PyTorch",
) -> dict[str, Any]:
    """Compare the ONNX graph's outputs with PyTorch's (``reference``) on ``table``'s rows.

    Classification must agree within ``atol`` on every probability and give
    identical labels; regression within ``atol`` relative to the value's size.
    ``native`` names what answered ``reference`` in the message (a model
    trained elsewhere: ``scikit-learn Pipeline``).

    Raises:
        ParityError: saying by how much and where they differ.
    """
    names = predictor.input_names
    features = table.select([n for n in names if n in table.column_names])
    result = predictor.predict(features)
    if predictor.task == "regression":
        assert result.values is not None
        got = result.values.astype(np.float64)
        want = reference.astype(np.float64)
        scale = np.maximum(1.0, np.abs(want))
        diff = np.abs(got - want) / scale
        worst = int(np.argmax(diff)) if len(diff) else 0
        if len(diff) and diff[worst] > atol:
            raise ParityError(
                f"parity check failed: ONNX Runtime gives {got[worst]:.6g} and {native} "
                f"{want[worst]:.6g} at test row {worst} (difference relative to "
                f"max(1, |value|) {diff[worst]:.3g} > tolerance {atol})"
            )
        return {
            "rows": len(diff),
            "max_abs_diff": float(np.abs(got - want).max(initial=0.0)),
            "max_rel_diff": float(diff.max(initial=0.0)),
            "tolerance": atol,
            "labels_identical": None,
        }
    assert result.probabilities is not None and result.labels is not None
    diff = np.abs(result.probabilities.astype(np.float64) - reference.astype(np.float64))
    classes = predictor.classes or []
    expected_labels = np.asarray(classes, dtype=object)[reference.argmax(axis=1)]
    differing = np.flatnonzero(result.labels != expected_labels)
    flat = int(np.argmax(diff)) if diff.size else 0
    worst_row, worst_col = divmod(flat, max(diff.shape[1], 1)) if diff.ndim == 2 else (0, 0)
    largest = float(diff.max(initial=0.0))
    if largest > atol or len(differing):
        where = f"test row {worst_row}, class {classes[worst_col]!r}"
        labels = (
            f"; {len(differing)} labels differ (rows {', '.join(map(str, differing[:5]))})"
            if len(differing)
            else ""
        )
        raise ParityError(
            f"parity check failed: ONNX Runtime and {native} probabilities differ by up to "
            f"{largest:.3g} (> {atol}) at {where}{labels}"
        )
    return {
        "rows": int(diff.shape[0]),
        "max_abs_diff": largest,
        "tolerance": atol,
        "labels_identical": True,
    }
