"""Training runs in a project: quality bars, records, reproducibility, stopping, schedules."""

from __future__ import annotations

import math
import sys
import uuid

import numpy as np
import pyarrow as pa
import pytest
from safetensors.torch import load as load_tensors

from mlcycle import DataError, Project, SpecError
from mlcycle.spec import TrainSpec
from mlcycle.train import load_model, predict, train
from mlcycle.train._loop import _lr_factor


@pytest.mark.slow
@pytest.mark.parametrize(
    ("data", "model", "bar"),
    [
        ("sklearn:breast_cancer", "mlp", 0.95),
        ("sklearn:digits", "mlp", 0.96),
        ("sklearn:digits", "cnn", 0.97),
    ],
)
def test_default_models_reach_the_quality_bars(
    project: Project, data: str, model: str, bar: float
) -> None:
    outcome = train(project, data=data, model=model)
    assert outcome.test["accuracy"] >= bar
    ci = outcome.summary["test_ci"]["accuracy"]
    assert ci["low"] <= outcome.test["accuracy"] <= ci["high"]


def test_a_run_records_everything(project: Project) -> None:
    outcome = train(project, data="sklearn:iris", overrides={"max_epochs": 6, "batch_size": 16})
    run = project.runs.get(outcome.run_id)
    assert run.status == "finished"
    assert run.params["dataset"] == "iris@1"
    assert run.params["train"]["max_epochs"] == 6
    assert run.params["split"] == {"train": 105, "validation": 23, "test": 22}
    assert run.params["environment"]["packages"]["torch"].startswith("2.13")
    assert run.dataset_version_id == project.datasets.get("iris@1").id
    assert {
        "checkpoint/state.safetensors",
        "checkpoint/state.json",
        "model/weights.safetensors",
        "model/model.json",
        "report.html",
    } <= set(run.artifacts)
    epochs = run.summary["epochs_run"]
    losses = project.runs.metrics(run.id, "train_loss")
    assert [p.step for p in losses] == list(range(epochs))
    assert {p.key for p in project.runs.metrics(run.id)} >= {
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
    }
    s = run.summary
    assert s["parameters"] == 4 * 128 + 128 + 128 * 64 + 64 + 64 * 3 + 3
    assert s["flops_per_sample"] == 2 * (4 * 128 + 128 * 64 + 64 * 3)
    assert s["samples_per_s"] > 0 and s["peak_memory_mb"] > 0 and s["device"] == "cpu"
    per_class = s["test_metrics"]["per_class"]
    assert set(per_class) == {"setosa", "versicolor", "virginica"}
    assert len(s["test_metrics"]["confusion_matrix"]) == 3
    assert outcome.report.is_file()


def test_the_same_spec_data_and_seed_give_the_same_metrics(project: Project) -> None:
    runs = [
        train(project, data="sklearn:wine", overrides={"max_epochs": 5, "seed": 3})
        for _ in range(2)
    ]
    a, b = (project.runs.get(o.run_id) for o in runs)
    assert a.artifacts["model/weights.safetensors"] == b.artifacts["model/weights.safetensors"]
    assert [p.value for p in project.runs.metrics(a.id)] == [
        p.value for p in project.runs.metrics(b.id)
    ]
    assert runs[0].test == runs[1].test
    other = train(project, data="sklearn:wine", overrides={"max_epochs": 5, "seed": 4})
    c = project.runs.get(other.run_id)
    assert c.artifacts["model/weights.safetensors"] != a.artifacts["model/weights.safetensors"]


def test_early_stopping_restores_the_best_epoch(project: Project) -> None:
    outcome = train(
        project,
        data="sklearn:breast_cancer",
        overrides={
            "max_epochs": 200,
            "lr": 0.01,
            "early_stopping": {"metric": "loss", "patience": 3, "min_delta": 0.0},
        },
    )
    s = outcome.summary
    assert s["stopped_early"] and s["epochs_run"] < 200
    assert s["epochs_run"] == s["best_epoch"] + 4  # patience 3: the 4th bad epoch stops
    val_losses = [p.value for p in project.runs.metrics(outcome.run_id, "val_loss")]
    assert s["best_epoch"] == int(np.argmin(val_losses)) + 1  # epochs count from 1
    # The saved model is the best epoch's, not the last one's.
    model, _ = load_model(project, outcome.run_id)
    assert s["best_value"] == pytest.approx(min(val_losses))
    assert model.training is False


def test_learning_rate_schedules() -> None:
    spec = TrainSpec.model_validate(
        {"lr": 0.1, "max_epochs": 10, "schedule": {"kind": "cosine", "warmup_epochs": 2}}
    )
    factors = [_lr_factor(spec, e) for e in range(10)]
    assert factors[:2] == pytest.approx([1 / 3, 2 / 3])
    assert factors[2] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    step = TrainSpec.model_validate({"schedule": {"kind": "step", "step_size": 3, "gamma": 0.5}})
    assert [_lr_factor(step, e) for e in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_the_recorded_learning_rate_follows_the_schedule(project: Project) -> None:
    outcome = train(
        project,
        data="sklearn:iris",
        overrides={
            "max_epochs": 6,
            "lr": 0.01,
            "schedule": {"kind": "step", "step_size": 2, "gamma": 0.1},
            "early_stopping": {"patience": 100},
        },
    )
    lrs = [p.value for p in project.runs.metrics(outcome.run_id, "lr")]
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001])


def test_class_weights_and_a_balanced_sampler_help_the_minority_class(project: Project) -> None:
    # A known truth: 5% positives that are separable on one feature, buried in noise.
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.random(n) < 0.05
    x = rng.normal(0, 1, (n, 5))
    x[:, 0] += np.where(y, 1.5, 0.0)
    table = pa.table({**{f"x{i}": x[:, i] for i in range(5)}, "y": np.where(y, "pos", "neg")})
    added = project.datasets.add(table, name="rare", target="y")
    assert any("class imbalance" in w for w in added.warnings)

    base = {"max_epochs": 15, "early_stopping": {"patience": 100}}
    plain = train(project, data="rare", overrides=base)
    weighted = train(project, data="rare", overrides={**base, "class_weight": "balanced"})
    sampled = train(project, data="rare", overrides={**base, "sampler": "balanced"})
    explicit = train(project, data="rare", overrides={**base, "class_weight": {"pos": 19.0}})

    def pos_recall(run_id: str) -> float:
        return float(project.runs.get(run_id).summary["test_metrics"]["per_class"]["pos"]["recall"])

    assert pos_recall(plain.run_id) < 0.5
    for better in (weighted, sampled, explicit):
        assert pos_recall(better.run_id) > pos_recall(plain.run_id) + 0.2
    with pytest.raises(SpecError, match=r"train.class_weight: \['maybe'\] are not classes"):
        train(project, data="rare", overrides={**base, "class_weight": {"maybe": 2.0}})


def test_regression_trains_and_reports_regression_metrics(project: Project) -> None:
    outcome = train(project, data="sklearn:diabetes", overrides={"max_epochs": 30, "lr": 0.005})
    assert set(outcome.test) == {"mae", "rmse", "r2", "mape"}
    assert outcome.test["r2"] > 0.2
    model, config = load_model(project, outcome.run_id)
    assert config["task"] == "regression"
    # The model answers in the target's units (the standardisation is inside it).
    from mlcycle.train import encode
    from mlcycle.train._features import FeatureLayout

    layout = FeatureLayout.from_dict(config["layout"])
    preds = predict(
        model, encode(project.datasets.load("diabetes"), layout), model.target_mean.device
    )
    assert 50 < float(preds.mean()) < 250


def test_a_custom_model_from_the_project_folder_trains_and_loads(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"proj_models_{uuid.uuid4().hex[:8]}"
    (project.root / f"{module}.py").write_text(
        "from tests.train.custom_models import tiny\n"  # the user's file, as they'd write it
    )
    monkeypatch.delitem(sys.modules, module, raising=False)
    outcome = train(
        project,
        data="sklearn:iris",
        model="custom",
        overrides={"model.factory": f"{module}:tiny", "max_epochs": 2},
    )
    monkeypatch.delitem(sys.modules, module)  # a fresh process, as register would be
    net, _ = load_model(project, outcome.run_id)
    assert net.body[0].in_features == 4


def test_a_custom_model_trains(project: Project) -> None:
    outcome = train(
        project,
        data="sklearn:iris",
        model="custom",
        overrides={
            "model.factory": "tests.train.custom_models:tiny",
            "model.options": {"width": 16},
            "max_epochs": 40,
            "lr": 0.05,
        },
    )
    weights = load_tensors(
        project.artifacts.read_bytes(
            project.runs.get(outcome.run_id).artifacts["model/weights.safetensors"]
        )
    )
    assert weights["body.0.weight"].shape == (16, 4)
    assert outcome.test["accuracy"] > 0.8


def test_training_errors_are_clear(project: Project) -> None:
    with pytest.raises(SpecError, match=r"train.loss: 'mse' does not fit a multiclass task"):
        train(project, data="sklearn:iris", overrides={"loss": "mse", "max_epochs": 1})
    with pytest.raises(SpecError, match=r"early_stopping.metric: 'r2' is not one of"):
        train(project, data="sklearn:iris", overrides={"early_stopping.metric": "r2"})
    with pytest.raises(SpecError, match="'cuda' but no CUDA device is available"):
        train(project, data="sklearn:iris", device="cuda")
    project.datasets.add(
        pa.table({"a": [1.0, 2.0, 3.0] * 10, "b": [3.0, 1.0, 2.0] * 10}), name="nolabel"
    )
    with pytest.raises(DataError, match="dataset nolabel@1 has no target"):
        train(project, data="nolabel")


def test_binary_with_bce_uses_one_logit(project: Project) -> None:
    outcome = train(
        project,
        data="sklearn:breast_cancer",
        overrides={"loss": "bce", "max_epochs": 25, "class_weight": "balanced"},
    )
    _, config = load_model(project, outcome.run_id)
    assert config["n_outputs"] == 1
    assert outcome.test["accuracy"] > 0.9
    train_acc = [p.value for p in project.runs.metrics(outcome.run_id, "train_accuracy")]
    assert train_acc[-1] > 0.9 and all(0 <= a <= 1 for a in train_acc)


def test_fast_epochs_are_checkpointed_at_most_once_per_interval(project: Project) -> None:
    quick = train(
        project,
        data="sklearn:iris",
        overrides={"max_epochs": 30, "early_stopping": {"patience": 100}},
    )
    every = train(
        project,
        data="sklearn:iris",
        overrides={
            "max_epochs": 30,
            "early_stopping": {"patience": 100},
            "checkpoint_interval_s": 0,
        },
    )
    for outcome in (quick, every):
        steps = [p.step for p in project.runs.metrics(outcome.run_id, "val_loss")]
        assert steps == list(range(30))  # every epoch's metrics, whatever was checkpointed
    # Coalescing changes what is stored, never what is learnt.
    a, b = (project.runs.get(o.run_id) for o in (quick, every))
    assert a.artifacts["model/weights.safetensors"] == b.artifacts["model/weights.safetensors"]
    assert b.summary["checkpoints_written"] == 30
    assert 1 <= a.summary["checkpoints_written"] < 30
