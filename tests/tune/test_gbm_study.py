"""A study of gbm models searches LightGBM's own options, with boosting rounds as its budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcycle import Project, SpecError
from mlcycle.train import MODEL_ONNX
from mlcycle.tune import default_space, trial_runs, tune
from mlcycle.workflow import register


def test_a_gbm_study_searches_the_kinds_options_and_registers_nothing_else(
    tmp_path: Path,
) -> None:
    assert sorted(default_space("gbm")) == [
        "model.options.feature_fraction",
        "model.options.lambda_l2",
        "model.options.learning_rate",
        "model.options.min_child_samples",
        "model.options.num_leaves",
    ]
    with Project.init(tmp_path / "p", name="p") as project:
        summary = tune(
            project,
            data="sklearn:breast_cancer",
            model="gbm",
            n_trials=2,
            seed=0,
            overrides={"evaluate.bootstrap": 0},
        )
        assert summary.trials["complete"] == 2
        runs = trial_runs(project, summary.run_id)
        assert len(runs) == 2
        drawn = [r.params["train"]["model"]["options"] for r in runs]
        assert all(r.params["train"]["model"]["kind"] == "gbm" for r in runs)
        assert drawn[0]["num_leaves"] != drawn[1]["num_leaves"]
        assert all(8 <= d["num_leaves"] <= 128 and 0.5 <= d["feature_fraction"] <= 1 for d in drawn)
        # each trial early-stopped on the study's objective, one recorded point per round
        for run in runs:
            curve = project.runs.metrics(run.id, "val_accuracy")
            assert len(curve) == run.summary["epochs_run"] > 0
        assert summary.best is not None and summary.best["test"]["accuracy"] >= 0.9
        # a trial keeps no graph; registering it exports one and checks it
        assert all(MODEL_ONNX not in r.artifacts for r in runs)
        version = register(project, runs[0].id, "trial")
        assert version.metrics["parity"]["max_abs_diff"] <= 1e-5


def test_an_option_the_kind_lacks_is_refused_before_any_trial(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", name="p") as project:
        project.datasets.add("sklearn:iris")
        with pytest.raises(SpecError, match=r"tune\.space\.model\.options\.leaves"):
            tune(
                project,
                data="iris",
                model="gbm",
                n_trials=1,
                overrides={"tune.space": {"model.options.leaves": {"low": 2, "high": 8}}},
            )
        with pytest.raises(SpecError, match=r"num_leaves.*1 is not >= 2"):
            tune(
                project,
                data="iris",
                model="gbm",
                n_trials=1,
                overrides={"tune.space": {"model.options.num_leaves": {"low": 1, "high": 8}}},
            )
