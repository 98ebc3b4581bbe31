"""``fit(sample_weight=...)``: per-row weights draw each epoch's rows (what Fairlearn's reductions ask)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlcycle import DataError
from mlcycle.spec import TrainSpec
from mlcycle.train import Encoded, FeatureLayout, TrainData, build_model, fit, predict

CPU = torch.device("cpu")


def _data() -> tuple[TrainData, FeatureLayout]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(np.int64)
    encoded = Encoded(numeric=x, categorical=None, image=None)
    layout = FeatureLayout(("a", "b"), (), {}, None, None, (0.0, 0.0), (1.0, 1.0))
    return TrainData("binary", 2, encoded, y, encoded, y, ("no", "yes")), layout


def _trained(weights: np.ndarray | None) -> np.ndarray:
    data, layout = _data()
    spec = TrainSpec(max_epochs=5, seed=0, device="cpu", mixed_precision=False)
    torch.manual_seed(0)
    net = build_model(spec.model, layout, "binary", 2)
    result = fit(spec, net, data, device=CPU, sample_weight=weights)
    return predict(result.model, data.val_x, CPU).numpy().argmax(axis=1)


def test_weights_decide_which_rows_are_learnt() -> None:
    data, _ = _data()
    plain = _trained(None)
    assert 0.3 < plain.mean() < 0.7  # both classes predicted
    # rows of class "yes" weigh nothing: the network never sees one and answers "no"
    only_no = _trained((data.train_y == 0).astype(float))
    assert only_no.mean() == 0.0
    # equal weights are the shuffled epochs' distribution, not the same draws: still both
    assert 0.3 < _trained(np.ones(400)).mean() < 0.7


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(3), r"expected 400 finite weights .* got shape \[3\]"),
        (-np.ones(400), r"weights must be >= 0 and not all zero"),
        (np.zeros(400), r"weights must be >= 0 and not all zero"),
    ],
)
def test_bad_weights_are_one_line_errors(weights: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        _trained(weights)
