"""``train.model.kind: gbm``: LightGBM trained, recorded, exported and registered like a network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pytest

import mlcycle
import mlcycle.cli  # registers the commands
from mlcycle import Project, SpecError
from mlcycle.cli._app import main, out
from mlcycle.errors import ConflictError
from mlcycle.train import GBM_TEXT, MODEL_ONNX, choose_kind, load_trained, train
from mlcycle.train._gbm import float32_thresholds
from mlcycle.workflow import register
from tests.registry.conftest import mixed_table


@pytest.fixture(scope="module")
def cancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, str]]:
    """breast_cancer boosted once for the module, and registered as ``cancer@1``."""
    root = Path(tmp_path_factory.mktemp("gbm")) / "proj"
    with Project.init(root, name="proj") as project:
        outcome = train(project, data="sklearn:breast_cancer", model="gbm")
        register(project, outcome.run_id, "cancer")
        yield project, outcome.run_id


def test_breast_cancer_reaches_the_bar_and_is_recorded_as_a_run(
    cancer: tuple[Project, str],
) -> None:
    project, run_id = cancer
    run = project.runs.get(run_id)
    assert run.status == "finished" and run.tags["model"] == "gbm"
    test = run.summary["test"]
    assert test["accuracy"] >= 0.95
    ci = run.summary["test_ci"]["accuracy"]
    assert ci["low"] <= test["accuracy"] <= ci["high"] and ci["low"] < ci["high"]
    assert {GBM_TEXT, "model/model.json", MODEL_ONNX, "report.html"} <= set(run.artifacts)
    assert "model/weights.safetensors" not in run.artifacts
    config = json.loads(project.artifacts.read_bytes(run.artifacts["model/model.json"]))
    assert config["model"]["kind"] == "gbm" and config["task"] == "binary"
    text = project.artifacts.read_bytes(run.artifacts[GBM_TEXT]).decode()
    assert text.startswith("tree") and "Tree=0" in text  # LightGBM's own text, not a pickle
    rounds = run.summary["epochs_run"]
    curve = project.runs.metrics(run_id, "val_loss")
    assert [p.step for p in curve] == list(range(rounds))  # one point per boosting round
    assert {p.key for p in project.runs.metrics(run_id)} >= {"train_loss", "val_loss"}
    assert run.summary["trees"] == run.summary["best_epoch"]  # the best round's trees only


def test_registered_version_agrees_with_lightgbm_on_the_test_rows(
    cancer: tuple[Project, str],
) -> None:
    project, run_id = cancer
    version = project.store.registry.get("cancer@1")
    parity = version.metrics["parity"]
    assert parity["max_abs_diff"] <= 1e-5 and parity["tolerance"] == 1e-5
    assert parity["labels_identical"] is True and parity["rows"] > 0
    card = project.artifacts.read_bytes(version.files["card.md"]).decode()
    assert f"ONNX Runtime matches LightGBM on {parity['rows']} test rows" in card
    assert {"lightgbm.txt", "model.json", "model.onnx", "reference.parquet", "ood.json"} <= set(
        version.files
    )
    assert "weights.safetensors" not in version.files
    assert [s["name"] for s in version.signature["inputs"]][:2] == ["mean_radius", "mean_texture"]

    test = project.datasets.load_split("breast_cancer@1")["test"]
    model, _ = load_trained(project, run_id)
    booster = lgb.Booster(model_str=model.to_text())
    columns = [s["name"] for s in version.signature["inputs"]]
    # mlcycle's graph takes numbers as float32: LightGBM is asked about the same values
    matrix = np.column_stack([test.column(c).to_numpy() for c in columns]).astype(np.float32)
    theirs = booster.predict(matrix)
    predictor = mlcycle.load("cancer@1", project=project)
    ours = predictor.predict(test.select(columns))
    assert ours.probabilities is not None and ours.labels is not None
    assert np.abs(ours.probabilities[:, 1] - theirs).max() <= 1e-5
    classes = np.asarray(version.signature["classes"], dtype=object)
    assert (ours.labels == classes[(theirs > 0.5).astype(int)]).all()


def test_float32_thresholds_change_no_answer_on_float32_inputs() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] ** 2 > 0.5).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1}, lgb.Dataset(x, y), 20
    )
    moved = lgb.Booster(model_str=float32_thresholds(booster.model_to_string()))
    probe = rng.normal(size=(2000, 4)).astype(np.float32)
    np.testing.assert_array_equal(moved.predict(probe), booster.predict(probe))
    thresholds = [
        node["threshold"]
        for tree in moved.dump_model()["tree_info"]
        for node in _splits(tree["tree_structure"])
    ]
    assert thresholds and all(float(np.float32(t)) == t for t in thresholds)


def _splits(node: dict[str, object]) -> Iterator[dict[str, object]]:
    if "split_index" in node:
        yield node
        for side in ("left_child", "right_child"):
            yield from _splits(node[side])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, str]]:
    """A number, a category and a flag with gaps in each (a known truth), boosted and registered."""
    root = Path(tmp_path_factory.mktemp("gbm-mixed")) / "proj"
    with Project.init(root, name="proj") as project:
        project.datasets.add(mixed_table(1200), name="mixed", target="y")
        outcome = train(
            project,
            data="mixed",
            model="gbm",
            overrides={"model.options": {"min_child_samples": 5}, "evaluate.bootstrap": 100},
        )
        register(project, outcome.run_id, "mixed")
        yield project, outcome.run_id


def test_a_categorical_column_is_split_natively_and_unseen_categories_work(
    mixed: tuple[Project, str],
) -> None:
    project, run_id = mixed
    model, _ = load_trained(project, run_id)
    assert model.layout.categorical == ("city",)
    tree_info = model.booster.dump_model()["tree_info"]
    on_city = [
        node
        for tree in tree_info
        for node in _splits(tree["tree_structure"])
        if node["split_feature"] == 2  # income, member, then city
    ]
    assert on_city and all(node["decision_type"] == "==" for node in on_city)
    assert project.runs.get(run_id).summary["test"]["accuracy"] >= 0.85

    predictor = mlcycle.load("mixed@1", project=project)
    rows = pa.table(
        {
            "income": pa.array([55.0, 55.0, 55.0, None, 40.0], type=pa.float64()),
            "city": pa.array(["paris", "lyon", "marseille", None, ""], type=pa.string()),
            "member": pa.array([True, False, True, None, False], type=pa.bool_()),
        }
    )
    answer = predictor.predict(rows)
    assert answer.probabilities is not None
    theirs = model.predict_table(rows)  # LightGBM on the layout's codes: 0 is missing or unseen
    assert np.abs(answer.probabilities - theirs).max() <= 1e-5
    unseen = rows.slice(2, 1)
    as_missing = unseen.set_column(1, "city", pa.array([None], type=pa.string()))
    np.testing.assert_allclose(
        predictor.predict(unseen).probabilities, predictor.predict(as_missing).probabilities
    )


def test_monotone_constraints_hold_and_bad_ones_are_refused(mixed: tuple[Project, str]) -> None:
    project, _ = mixed
    outcome = train(
        project,
        data="mixed",
        model="gbm",
        overrides={"model.options": {"monotone": {"income": 1}}, "evaluate.bootstrap": 0},
    )
    model, _ = load_trained(project, outcome.run_id)
    grid = np.linspace(10, 90, 200)
    for city in ("paris", "lyon", None):
        rows = pa.table(
            {
                "income": grid,
                "city": pa.array([city] * len(grid), type=pa.string()),
                "member": pa.array([True] * len(grid)),
            }
        )
        p_yes = model.predict_table(rows)[:, list(model.classes).index("yes")]
        assert (np.diff(p_yes) >= -1e-12).all()
    with pytest.raises(SpecError, match=r"monotone\.city: 'city' is categorical"):
        train(project, data="mixed", model="gbm", overrides={"model.options.monotone": {"city": 1}})
    with pytest.raises(SpecError, match=r"no numeric feature 'age'"):
        train(project, data="mixed", model="gbm", overrides={"model.options.monotone": {"age": 1}})


def test_class_weights_move_the_decision(mixed: tuple[Project, str]) -> None:
    project, _ = mixed
    shares = []
    for weights in ({"yes": 1.0, "no": 1.0}, {"yes": 20.0, "no": 1.0}):
        outcome = train(
            project,
            data="mixed",
            model="gbm",
            overrides={"class_weight": weights, "evaluate.bootstrap": 0},
        )
        model, _ = load_trained(project, outcome.run_id)
        test = project.datasets.load_split("mixed@1")["test"]
        shares.append(float(np.mean(model.predict_table(test).argmax(axis=1) == 1)))
    assert shares[1] > shares[0]


def test_same_seed_same_trees(project: Project) -> None:
    project.datasets.add("sklearn:breast_cancer")
    texts = []
    for _ in range(2):
        outcome = train(
            project, data="breast_cancer", model="gbm", overrides={"evaluate.bootstrap": 0}
        )
        run = project.runs.get(outcome.run_id)
        texts.append(project.artifacts.read_bytes(run.artifacts[GBM_TEXT]))
    assert texts[0] == texts[1]


def test_early_stopping_stops_before_the_last_round(project: Project) -> None:
    outcome = train(
        project,
        data="sklearn:breast_cancer",
        model="gbm",
        overrides={
            "model.options": {
                "n_estimators": 2000,
                "learning_rate": 0.5,
                "early_stopping_rounds": 10,
            },
            "evaluate.bootstrap": 0,
        },
    )
    s = outcome.summary
    assert s["stopped_early"] is True
    assert s["epochs_run"] == s["best_epoch"] + 10 < 2000
    curve = [p.value for p in project.runs.metrics(outcome.run_id, "val_loss")]
    assert min(curve) == pytest.approx(curve[s["best_epoch"] - 1])
    assert s["best_value"] == pytest.approx(min(curve))


@pytest.mark.parametrize(
    ("data", "task", "metric", "bar"),
    [
        ("sklearn:diabetes", "regression", "r2", 0.3),
        ("sklearn:iris", "multiclass", "accuracy", 0.85),
    ],
)
def test_regression_and_multiclass_register_with_parity(
    project: Project, data: str, task: str, metric: str, bar: float
) -> None:
    outcome = train(project, data=data, model="gbm", overrides={"evaluate.bootstrap": 50})
    assert outcome.test[metric] >= bar
    version = register(project, outcome.run_id, "m")
    assert version.task == task
    parity = version.metrics["parity"]
    assert parity["rows"] > 0 and parity["tolerance"] == 1e-5
    assert (parity["max_rel_diff"] if task == "regression" else parity["max_abs_diff"]) <= 1e-5
    model, _ = load_trained(project, outcome.run_id)
    test = project.datasets.load_split(outcome.dataset)["test"]
    answer = mlcycle.load(version.ref, project=project).predict(test)
    theirs = model.predict_table(test)
    got = answer.values if task == "regression" else answer.probabilities
    assert got is not None
    np.testing.assert_allclose(got, theirs, rtol=1e-5, atol=1e-5)


def test_images_and_bad_options_are_refused(project: Project) -> None:
    with pytest.raises(SpecError, match=r"'gbm' takes tabular columns; .* image column"):
        train(project, data="sklearn:digits", model="gbm")
    with pytest.raises(SpecError, match=r"train\.model.*num_leaves: 1 is not >= 2"):
        train(project, data="sklearn:iris", model="gbm", overrides={"model.options.num_leaves": 1})
    with pytest.raises(SpecError, match=r"train\.model.*leaves: unknown field"):
        train(project, data="sklearn:iris", model="gbm", overrides={"model.options.leaves": 8})


def test_a_gbm_run_has_no_network_for_what_needs_one(cancer: tuple[Project, str]) -> None:
    from mlcycle.train import load_model

    project, run_id = cancer
    with pytest.raises(ConflictError, match=r"gbm model \(LightGBM trees\), not a PyTorch network"):
        load_model(project, run_id)


def test_auto_picks_gbm_for_a_table_and_cnn_for_images(project: Project) -> None:
    assert choose_kind(False) == ("gbm", "tabular data")
    assert choose_kind(True) == ("cnn", "an image column")
    outcome = train(
        project, data="sklearn:breast_cancer", model="auto", overrides={"evaluate.bootstrap": 0}
    )
    run = project.runs.get(outcome.run_id)
    assert run.params["train"]["model"]["kind"] == "gbm" and run.tags["model"] == "gbm"
    assert run.summary["model_choice"] == "model kind auto → gbm (tabular data)"
    outcome = train(
        project,
        data="sklearn:digits",
        model="auto",
        overrides={"max_epochs": 1, "model.channels": [4], "evaluate.bootstrap": 0},
    )
    assert project.runs.get(outcome.run_id).params["train"]["model"]["kind"] == "cnn"


def test_cli_trains_gbm_and_says_what_auto_picks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(out, "width", 200)
    with Project.init(tmp_path / "proj", name="proj") as project:
        project.datasets.add("sklearn:breast_cancer")
    root = str(tmp_path / "proj")
    code = main(["--project", root, "train", "--data", "breast_cancer", "--model", "gbm", "-q"])
    said = capsys.readouterr().out
    assert code == 0, said
    assert "best round" in said and "trees" in said and "accuracy" in said
    code = main(["--project", root, "train", "--data", "breast_cancer", "--model", "auto"])
    said = capsys.readouterr().out
    assert code == 0 and "model kind auto → gbm (tabular data)" in said


def test_audits_use_the_graph_and_compression_says_why_not(cancer: tuple[Project, str]) -> None:
    from mlcycle.audit import audit, explain
    from mlcycle.compress import compress

    project, _ = cancer
    result = audit(project, "cancer@1", options={"explain": {"repeats": 2, "steps": 2}})
    found = result.results["explain"]
    assert max(c.importance for c in found.importance.columns) > 0  # permutation, on the graph
    assert found.explanation.method == "shap" and found.explanation.rows  # no IG for trees
    assert "gbm model (LightGBM trees)" in result.skipped["robustness"]
    with pytest.raises(SpecError, match=r"'ig' needs PyTorch weights .*a gbm model"):
        explain(project, "cancer@1", [0], method="ig")
    with pytest.raises(SpecError, match=r"cancer@1 is a gbm model \(LightGBM trees\)"):
        compress(project, "cancer@1", methods=["dynamic-int8"])


def test_a_gbm_run_is_evaluated_again_with_slices(cancer: tuple[Project, str]) -> None:
    from mlcycle.train import evaluate_run

    project, run_id = cancer
    again = evaluate_run(project, run_id, slices=("mean_radius",), bins=2)
    assert again.test == project.runs.get(run_id).summary["test"]
    groups = again.summary["slices"]["mean_radius"]
    assert len(groups) == 2 and sum(g["n"] for g in groups.values()) == 85
