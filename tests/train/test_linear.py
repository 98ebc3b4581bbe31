"""``train.model.kind: linear``: logistic or ridge regression over mlcycle's preprocessing."""

from __future__ import annotations

import numpy as np
from safetensors.torch import load as load_tensors
from sklearn.linear_model import LogisticRegression

from mlcycle import Project
from mlcycle.train import train
from mlcycle.tune import default_space
from mlcycle.workflow import register


def _weights(project: Project, run_id: str) -> dict[str, object]:
    run = project.runs.get(run_id)
    return dict(
        load_tensors(project.artifacts.read_bytes(run.artifacts["model/weights.safetensors"]))
    )


def test_linear_is_one_layer_and_matches_logistic_regression(project: Project) -> None:
    outcome = train(
        project,
        data="sklearn:breast_cancer",
        model="linear",
        overrides={"max_epochs": 60, "lr": 0.01, "weight_decay": 1e-4},
    )
    weights = _weights(project, outcome.run_id)
    layers = [k for k in weights if k.startswith("body") and k.endswith("weight")]
    assert layers == ["body.weight"] and weights["body.weight"].shape == (2, 30)  # type: ignore[attr-defined]
    # the same split and standardisation, fitted by scikit-learn: within a point or two
    splits = project.datasets.load_split("breast_cancer@1")
    features = [c for c in splits["train"].column_names if c != "target"]

    def xy(name: str) -> tuple[np.ndarray, np.ndarray]:
        frame = splits[name].to_pandas()
        return frame[features].to_numpy(), frame["target"].astype(str).to_numpy()

    x, y = xy("train")
    mean, std = x.mean(axis=0), x.std(axis=0)
    reference = LogisticRegression(max_iter=5000).fit((x - mean) / std, y)
    xt, yt = xy("test")
    expected = reference.score((xt - mean) / std, yt)
    assert outcome.test["accuracy"] >= 0.95
    assert abs(outcome.test["accuracy"] - expected) <= 0.03


def test_a_linear_regression_registers_and_its_graph_has_no_hidden_layer(project: Project) -> None:
    outcome = train(
        project, data="sklearn:diabetes", model="linear", overrides={"max_epochs": 80, "lr": 0.05}
    )
    assert outcome.test["r2"] > 0.3  # ordinary least squares gets about 0.45 on this split size
    version = register(project, outcome.run_id, "lin")
    parity = version.metrics["parity"]
    assert parity["rows"] > 0 and parity["max_abs_diff"] <= parity["tolerance"]


def test_the_default_search_space_of_linear_has_no_architecture() -> None:
    space = default_space("linear")
    assert "lr" in space and "weight_decay" in space
    assert not [name for name in space if name.startswith("model.")]
