"""Evaluation of trained runs: threshold on validation, slices, the overfitting flag."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mlcycle import Project, SpecError
from mlcycle.evaluate import classification_metrics
from mlcycle.train import encode, encode_target, evaluate_run, load_model, predict, train
from mlcycle.train._features import FeatureLayout
from tests.evaluate.html_tables import section_tables


def _groups(project: Project) -> None:
    # A known truth: the label depends on x; group "b" is noisier than group "a".
    rng = np.random.default_rng(1)
    n = 1200
    group = rng.choice(["a", "b"], n)
    x = rng.normal(0, 1, (n, 3))
    noise = np.where(group == "b", 1.5, 0.2)
    y = (x[:, 0] + rng.normal(0, 1, n) * noise) > 0
    table = pa.table(
        {"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "group": group, "y": np.where(y, "yes", "no")}
    )
    project.datasets.add(table, name="groups", target="y")


def test_test_metrics_are_computed_on_the_recorded_test_rows(project: Project) -> None:
    outcome = train(project, data="sklearn:wine", overrides={"max_epochs": 20})
    model, config = load_model(project, outcome.run_id)
    test = project.datasets.load_split("wine@1")["test"]
    schema = project.datasets.schema("wine@1")
    layout = FeatureLayout.from_dict(config["layout"])
    proba = predict(model, encode(test, layout), model.target_mean.device).numpy()
    expected = classification_metrics(
        encode_target(test, schema), proba, list(schema.classes or ())
    )
    assert outcome.test["accuracy"] == pytest.approx(expected["accuracy"])
    assert outcome.summary["test_metrics"]["n"] == test.num_rows == 27
    again = evaluate_run(project, outcome.run_id)
    assert again.test == outcome.test


def test_the_binary_threshold_is_chosen_on_validation(project: Project) -> None:
    _groups(project)
    outcome = train(
        project,
        data="groups",
        overrides={"max_epochs": 10, "evaluate.threshold_metric": "balanced_accuracy"},
    )
    threshold = outcome.summary["threshold"]
    assert threshold is not None and 0 < threshold < 1
    assert outcome.summary["test_metrics"]["threshold"] == pytest.approx(threshold)
    plain = train(project, data="groups", overrides={"max_epochs": 10})
    assert plain.summary["threshold"] is None


def test_metrics_by_slice_of_a_sensitive_column(project: Project) -> None:
    _groups(project)
    spec = project.root / "mlcycle.yaml"
    spec.write_text(
        spec.read_text().replace(
            "  datasets: {}",
            "  datasets:\n    groups:\n      target: y\n      roles: {group: sensitive}",
        )
    )
    with Project.open(project.root) as reopened:
        version = reopened.datasets.add(reopened.datasets.load("groups"), name="groups").version
        assert version.version == 2  # the roles changed, so the schema and version did
        assert reopened.datasets.schema(version).sensitive == ("group",)
        outcome = train(
            reopened,
            data="groups@2",
            overrides={"max_epochs": 15, "evaluate.slices": ["group"]},
        )
        slices = outcome.summary["slices"]["group"]
        assert set(slices) == {"a", "b"}
        assert slices["a"]["n"] + slices["b"]["n"] == outcome.summary["test_metrics"]["n"]
        # The noisy group is predicted worse: the breakdown shows what the total hides.
        assert slices["a"]["accuracy"] > slices["b"]["accuracy"] + 0.1
        # The report shows the same numbers, not a table of dashes.
        [table] = section_tables(outcome.report.read_text(encoding="utf-8"), "By slice")
        header, *rows = table
        shown = {row[0]: row for row in rows}
        assert set(shown) == {"a", "b"}
        for name in ("a", "b"):
            assert shown[name][1] == str(slices[name]["n"])
            assert shown[name][2] == f"{slices[name]['accuracy']:.4f}"
        assert header[:3] == ["group", "n", "accuracy"]
        with pytest.raises(
            SpecError, match=r"evaluate.slices: column 'nope' is not in the dataset"
        ):
            evaluate_run(reopened, outcome.run_id, slices=("nope",))


@pytest.mark.slow
def test_a_large_train_validation_gap_is_flagged(project: Project) -> None:
    base = {
        "max_epochs": 150,
        "early_stopping": {"patience": 1000},
        "model.hidden": [256, 256],
        "model.dropout": 0.0,
        "lr": 0.01,
    }
    _groups(project)
    strict = train(project, data="groups", overrides={**base, "gap_warning": 0.0})
    assert strict.summary["overfitting"] is True
    assert strict.summary["train_eval"]["accuracy"] > strict.summary["val"]["accuracy"]
    assert "overfits" in strict.summary["warnings"][0]
    lenient = train(project, data="groups", overrides={**base, "gap_warning": 0.9})
    assert lenient.summary["overfitting"] is False and lenient.summary["warnings"] == []


def test_only_a_classifier_report_names_a_decision_threshold(project: Project) -> None:
    quick = {"max_epochs": 2, "evaluate.bootstrap": 0}
    regression = train(project, data="sklearn:diabetes", overrides=quick)
    [facts] = section_tables(regression.report.read_text(encoding="utf-8"), "Run")
    assert "decision threshold" not in {row[0] for row in facts}
    classifier = train(project, data="sklearn:iris", overrides=quick)
    [facts] = section_tables(classifier.report.read_text(encoding="utf-8"), "Run")
    assert ["decision threshold", "argmax"] in facts
