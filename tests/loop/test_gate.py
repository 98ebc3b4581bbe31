"""The champion/challenger gate on real registered models, its figures checked independently."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fairlearn.metrics import (  # type: ignore[import-untyped]
    demographic_parity_difference,
    equalized_odds_difference,
)
from pydantic import ValidationError

from mlcycle import DataError, Project, SpecError
from mlcycle.evaluate import (
    classification_metrics,
    metric,
    metric_names,
    point_metrics,
    regression_metrics,
)
from mlcycle.loop import GateVerdict, gate
from mlcycle.loop._gate import _compare, _metric_checks, _Scored
from mlcycle.registry import Prediction, Predictor, load, register
from mlcycle.spec import AuditLimitSpec, GateSpec
from mlcycle.train import train
from tests.evaluate import metric_cases as cases

WEAK = {"max_epochs": 1, "lr": 1e-5, "train.model.hidden": [4]}


@dataclass(frozen=True)
class Models:
    project: Project
    weak: Predictor  # breast cancer, one epoch at a tiny learning rate: always "malignant"
    strong: Predictor
    cancer: pa.Table  # the breast-cancer test split: rows neither model trained on
    weak_reg: Predictor  # diabetes
    strong_reg: Predictor
    diabetes: pa.Table


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Models]:
    root = Path(tmp_path_factory.mktemp("gate")) / "proj"
    with Project.init(root, name="proj") as p:
        for data, name, strong in (
            ("sklearn:breast_cancer", "cancer", {"max_epochs": 10}),
            ("sklearn:diabetes", "diabetes", {"max_epochs": 30, "lr": 3e-3}),
        ):
            for overrides in (WEAK, strong):
                register(p, train(p, data=data, overrides=overrides).run_id, name)
        yield Models(
            p,
            load("cancer@1", project=p),
            load("cancer@2", project=p),
            p.datasets.load_split("breast_cancer@1")["test"],
            load("diabetes@1", project=p),
            load("diabetes@2", project=p),
            p.datasets.load_split("diabetes@1")["test"],
        )


def _correct(model: Predictor, table: pa.Table) -> np.ndarray[Any, Any]:
    labels = model.predict(table.drop_columns(["target"])).labels
    return np.asarray(labels == np.asarray(table["target"].to_pylist(), dtype=object))


def _paired_interval(
    champion: np.ndarray[Any, Any], challenger: np.ndarray[Any, Any], n_boot: int, seed: int
) -> tuple[float, float]:
    """The 95 % interval of mean(challenger) - mean(champion) over shared resamples, by hand."""
    rows = np.random.default_rng(seed).integers(0, champion.size, size=(n_boot, champion.size))
    diffs = challenger[rows].mean(axis=1) - champion[rows].mean(axis=1)
    low, high = np.quantile(diffs, [0.025, 0.975])
    return float(low), float(high)


def _json(verdict: GateVerdict) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    return loaded


def test_a_stronger_challenger_is_promoted_with_figures_that_check_out(models: Models) -> None:
    spec = GateSpec()
    verdict = gate(models.weak, models.strong, models.cancer, target="target", spec=spec, seed=3)
    weak, strong = _correct(models.weak, models.cancer), _correct(models.strong, models.cancer)
    assert verdict.promote, verdict.reasons
    assert verdict.metric == "accuracy" and verdict.rows == models.cancer.num_rows == weak.size
    assert verdict.champion == pytest.approx(weak.mean())
    assert verdict.challenger == pytest.approx(strong.mean())
    assert verdict.delta == pytest.approx(strong.mean() - weak.mean()) and verdict.delta > 0.3
    low, high = _paired_interval(weak, strong, spec.bootstrap, seed=3)
    assert (verdict.low, verdict.high) == pytest.approx((low, high))
    assert 0 < verdict.low < verdict.delta < verdict.high
    assert any("improved by at least min_delta 0.01 " in r for r in verdict.reasons)
    assert any("excludes 0" in r for r in verdict.reasons)
    assert _json(verdict)["promote"] is True


def test_the_same_model_twice_is_not_an_improvement(models: Models) -> None:
    verdict = gate(models.strong, models.strong, models.cancer, target="target", spec=GateSpec())
    assert not verdict.promote
    assert verdict.delta == 0.0 and verdict.low == verdict.high == 0.0  # paired: every draw ties
    assert any("accuracy did not improve" in r and "delta +0" in r for r in verdict.reasons)
    assert any(
        r.endswith("[+0, +0] (1000 resamples) contains 0: the gain may be noise")
        for r in verdict.reasons
    )
    loose = GateSpec(require_ci=False)
    assert not gate(
        models.strong, models.strong, models.cancer, target="target", spec=loose
    ).promote


def test_a_weaker_challenger_is_rejected(models: Models) -> None:
    spec = GateSpec(metric="log_loss")
    verdict = gate(models.strong, models.weak, models.cancer, target="target", spec=spec)
    assert not verdict.promote
    assert verdict.delta < 0 and verdict.high < 0
    # lower is better: delta is champion minus challenger
    assert verdict.champion < verdict.challenger
    assert verdict.delta == pytest.approx(verdict.champion - verdict.challenger)
    assert any(r.startswith("log_loss did not improve") for r in verdict.reasons)
    assert any(r.endswith("lies below 0") for r in verdict.reasons)


def test_an_improvement_smaller_than_min_delta_is_rejected(models: Models) -> None:
    spec = GateSpec(min_delta=0.9)
    verdict = gate(models.weak, models.strong, models.cancer, target="target", spec=spec)
    assert not verdict.promote and 0 < verdict.delta < 0.9 and verdict.low > 0
    assert verdict.reasons == [
        f"accuracy improved by less than min_delta 0.9 (champion {verdict.champion:.4g}, "
        f"challenger {verdict.challenger:.4g}, delta {verdict.delta:+.4g} on 85 rows)"
    ]


def test_a_tiny_gain_passes_only_when_the_interval_is_not_required(models: Models) -> None:
    weak, strong = _correct(models.weak, models.cancer), _correct(models.strong, models.cancer)
    # Every row where the two agree, and one the challenger alone gets right.
    gain = np.flatnonzero(strong & ~weak)[:1]
    rows = np.sort(np.r_[np.flatnonzero(strong == weak), gain])
    holdout = models.cancer.take(pa.array(rows))
    strict = gate(models.weak, models.strong, holdout, target="target", spec=GateSpec())
    assert strict.delta == pytest.approx(1 / rows.size) and strict.low <= 0
    assert not strict.promote
    assert strict.reasons[0].startswith("the 95% paired bootstrap interval")
    loose = gate(
        models.weak, models.strong, holdout, target="target", spec=GateSpec(require_ci=False)
    )
    assert loose.promote, loose.reasons
    assert any("not required: require_ci is off" in r for r in loose.reasons)


def test_a_metric_guard_rejects_a_challenger_that_is_worse_on_it(models: Models) -> None:
    spec = GateSpec(require_ci=False, guards={"f1_macro": 0.0})
    verdict = gate(models.strong, models.weak, models.cancer, target="target", spec=spec)
    strong_f1 = classification_metrics(*_indices(models.strong, models.cancer))["f1_macro"]
    weak_f1 = classification_metrics(*_indices(models.weak, models.cancer))["f1_macro"]
    f1 = verdict.guards["f1_macro"]
    assert f1["champion"] == pytest.approx(strong_f1)
    assert f1["challenger"] == pytest.approx(weak_f1)
    assert f1["worsening"] == pytest.approx(strong_f1 - weak_f1)
    assert f1["worsening"] > 0
    assert f1["limit"] == 0.0 and not f1["ok"] and not verdict.promote
    assert any(
        r.startswith("guard f1_macro: ") and "more than the limit 0" in r for r in verdict.reasons
    )
    better = gate(models.weak, models.strong, models.cancer, target="target", spec=spec)
    assert better.guards["f1_macro"]["worsening"] < 0 and better.guards["f1_macro"]["ok"]
    assert better.promote


def _indices(model: Predictor, table: pa.Table) -> tuple[Any, Any, list[str]]:
    assert model.classes is not None
    index = {c: i for i, c in enumerate(model.classes)}
    y = np.array([index[v] for v in table["target"].to_pylist()])
    return y, model.predict_proba(table.drop_columns(["target"])), model.classes


class Slow(Predictor):
    """The same graph, 3 ms slower per call."""

    def predict(self, data: Any) -> Prediction:
        time.sleep(0.003)
        return super().predict(data)


def test_the_latency_guard_is_measured_and_rejects_a_slower_challenger(models: Models) -> None:
    version = models.project.store.registry.get("cancer@2")
    onnx = models.project.artifacts.read_bytes(version.files["model.onnx"])
    slow = Slow(onnx, models.strong.signature, name="cancer", version=3)
    spec = GateSpec(guards={"latency_ms": 1.0})
    verdict = gate(models.weak, slow, models.cancer, target="target", spec=spec)
    latency = verdict.guards["latency_ms"]
    assert latency["champion"] > 0 and latency["challenger"] > 3.0
    assert latency["worsening"] == pytest.approx(latency["challenger"] - latency["champion"])
    assert latency["worsening"] > 2.0 and not latency["ok"] and not verdict.promote
    assert any(r.startswith("guard latency_ms: champion ") and " ms" in r for r in verdict.reasons)
    fast = gate(
        models.weak,
        models.strong,
        models.cancer,
        target="target",
        spec=GateSpec(guards={"latency_ms": 1000.0}),
    )
    assert fast.promote and fast.guards["latency_ms"]["ok"]
    assert any(
        r.startswith("guard latency_ms: ") and "within the limit 1000 ms" in r for r in fast.reasons
    )


def _grouped(table: pa.Table) -> pa.Table:
    """The holdout with a sensitive column: large tumours against small ones."""
    radius = table["mean_radius"]
    big = pc.greater(radius, pc.approximate_median(radius))
    return table.append_column("size", pc.if_else(big, "large", "small"))


@pytest.mark.parametrize(
    ("guard", "fairlearn_fn"),
    [
        ("demographic_parity_difference", demographic_parity_difference),
        ("equalized_odds_difference", equalized_odds_difference),
    ],
)
def test_fairness_guards_use_fairlearns_figures(
    models: Models, guard: str, fairlearn_fn: Any
) -> None:
    holdout = _grouped(models.cancer)
    groups = np.asarray(holdout["size"].to_pylist())
    actual = np.asarray(holdout["target"].to_pylist()) == "malignant"
    expected = [
        float(
            fairlearn_fn(
                actual,
                m.predict(models.cancer.drop_columns(["target"])).labels == "malignant",
                sensitive_features=groups,
            )
        )
        for m in (models.weak, models.strong)
    ]
    assert expected[0] == 0.0  # the weak model calls every tumour malignant
    assert expected[1] > 0.1  # the strong one selects by size, which goes with the label
    strict = GateSpec(guards={guard: 0.05})
    verdict = gate(
        models.weak, models.strong, holdout, target="target", spec=strict, sensitive=["size"]
    )
    figures = verdict.guards[guard]
    assert figures["champion"] == pytest.approx(expected[0])
    assert figures["challenger"] == pytest.approx(expected[1])
    assert figures["worsening"] == pytest.approx(expected[1] - expected[0])
    assert figures["column"] == "size" and set(figures["by_column"]) == {"size"}
    assert not figures["ok"] and not verdict.promote
    assert any(r.startswith(f"guard {guard} on 'size': ") for r in verdict.reasons)
    loose = GateSpec(guards={guard: 1.0})
    assert gate(
        models.weak, models.strong, holdout, target="target", spec=loose, sensitive=["size"]
    ).promote
    # The other class as the positive one: a different selection, the same gate.
    other = gate(
        models.weak,
        models.strong,
        holdout,
        target="target",
        spec=loose,
        sensitive=["size"],
        positive_label="benign",
    )
    assert other.guards[guard]["champion"] == 0.0


def test_a_failed_parity_check_rejects(models: Models) -> None:
    verdict = gate(
        models.weak, models.strong, models.cancer, target="target", spec=GateSpec(), parity_ok=False
    )
    assert not verdict.promote and not verdict.parity_ok and verdict.delta > 0
    assert verdict.reasons == ["the challenger's ONNX graph failed its parity check"]


def test_regression_uses_rmse_with_lower_better(models: Models) -> None:
    holdout = models.diabetes
    y = np.asarray(holdout["target"].to_pylist())
    predicted = [
        np.asarray(m.predict(holdout.drop_columns(["target"])).values, dtype=np.float64)
        for m in (models.weak_reg, models.strong_reg)
    ]
    rmse = [float(np.sqrt(np.mean((p - y) ** 2))) for p in predicted]
    assert rmse[1] < rmse[0]
    verdict = gate(
        models.weak_reg, models.strong_reg, holdout, target="target", spec=GateSpec(), seed=1
    )
    assert verdict.metric == "rmse"
    assert (verdict.champion, verdict.challenger) == pytest.approx(rmse)
    assert verdict.delta == pytest.approx(rmse[0] - rmse[1]) and verdict.delta > 0
    assert verdict.low <= verdict.delta <= verdict.high
    assert verdict.low > 0 and verdict.promote, verdict.reasons
    reverse = gate(
        models.strong_reg, models.weak_reg, holdout, target="target", spec=GateSpec(), seed=1
    )
    assert reverse.delta == pytest.approx(-verdict.delta) and not reverse.promote
    assert (reverse.low, reverse.high) == pytest.approx((-verdict.high, -verdict.low))
    guarded = gate(
        models.weak_reg,
        models.strong_reg,
        holdout,
        target="target",
        spec=GateSpec(require_ci=False, guards={"mae": 0.0, "r2": 0.0}),
    )
    mae = [regression_metrics(y, p)["mae"] for p in predicted]
    assert guarded.guards["mae"]["worsening"] == pytest.approx(mae[1] - mae[0])
    assert guarded.guards["mae"]["ok"] and guarded.guards["r2"]["ok"] and guarded.promote


def test_the_verdict_is_json(models: Models) -> None:
    spec = GateSpec(guards={"latency_ms": 50.0, "demographic_parity_difference": 1.0})
    holdout = _grouped(models.cancer)
    verdict = gate(
        models.weak, models.strong, holdout, target="target", spec=spec, sensitive=["size"]
    )
    record = _json(verdict)
    assert set(record) == {
        "promote",
        "metric",
        "champion",
        "challenger",
        "delta",
        "low",
        "high",
        "rows",
        "guards",
        "parity_ok",
        "reasons",
        "improved",
        "audit",
    }
    assert record["improved"] is True
    assert record["guards"]["demographic_parity_difference"]["by_column"]["size"]["ok"] is True


def test_models_that_cannot_be_compared_are_rejected_with_the_reason(models: Models) -> None:
    task = gate(models.weak, models.strong_reg, models.cancer, target="target", spec=GateSpec())
    assert not task.promote and "different tasks" in task.reasons[0]
    assert _json(task)["delta"] is None
    renamed = {**models.strong.signature, "classes": ["benign", "cancerous"]}
    version = models.project.store.registry.get("cancer@2")
    other = Predictor(models.project.artifacts.read_bytes(version.files["model.onnx"]), renamed)
    verdict = gate(models.weak, other, models.cancer, target="target", spec=GateSpec())
    assert not verdict.promote
    assert verdict.reasons == [
        "the models' classes differ: champion cancer@1 has ['benign', 'malignant'], "
        "challenger model has ['benign', 'cancerous']"
    ]


def test_bad_input_gives_clear_errors(models: Models) -> None:
    weak, strong, holdout = models.weak, models.strong, models.cancer
    with pytest.raises(SpecError, match=r"unknown guard 'speed'.*latency_ms.*f1_macro"):
        gate(weak, strong, holdout, target="target", spec=GateSpec(guards={"speed": 1.0}))
    with pytest.raises(SpecError, match=r"unknown guard 'rmse' for a classification model"):
        gate(weak, strong, holdout, target="target", spec=GateSpec(guards={"rmse": 1.0}))
    with pytest.raises(SpecError, match=r"metric: 'rmse' is not a classification metric"):
        gate(weak, strong, holdout, target="target", spec=GateSpec(metric="rmse"))
    fair = GateSpec(guards={"equalized_odds_difference": 0.1})
    with pytest.raises(SpecError, match="needs sensitive columns"):
        gate(weak, strong, holdout, target="target", spec=fair)
    with pytest.raises(SpecError, match=r"positive_label: 'yes' is not a class"):
        gate(
            weak,
            strong,
            _grouped(holdout),
            target="target",
            spec=fair,
            sensitive=["size"],
            positive_label="yes",
        )
    with pytest.raises(DataError, match="no sensitive column 'sex'"):
        gate(weak, strong, holdout, target="target", spec=fair, sensitive=["sex"])
    unguarded = gate(weak, strong, holdout, target="target", spec=GateSpec(), sensitive=["sex"])
    assert unguarded.promote  # without a fairness guard the sensitive columns are not needed
    with pytest.raises(DataError, match="no target column 'label'"):
        gate(weak, strong, holdout, target="label", spec=GateSpec())
    with pytest.raises(DataError, match=r"cancer@1 needs input column 'worst_area'"):
        gate(weak, strong, holdout.drop_columns(["worst_area"]), target="target", spec=GateSpec())
    with pytest.raises(DataError, match="no rows"):
        gate(weak, strong, holdout.slice(0, 0), target="target", spec=GateSpec())
    relabelled = holdout.set_column(
        holdout.column_names.index("target"),
        "target",
        pc.replace_substring(holdout["target"], "malignant", "bad"),
    )
    bad = pc.sum(pc.equal(holdout["target"], "malignant")).as_py()
    with pytest.raises(
        DataError, match=rf"target 'target': {bad} labels are not among the classes"
    ):
        gate(weak, strong, relabelled, target="target", spec=GateSpec())


def _softened(p: np.ndarray[Any, Any], seed: int) -> np.ndarray[Any, Any]:
    """Another model's probabilities: the same mixed with noise, some decisions flipped."""
    noise = np.random.default_rng(seed).dirichlet(np.ones(p.shape[1]), size=p.shape[0])
    q = 0.6 * p + 0.4 * noise
    return np.asarray(q / q.sum(axis=1, keepdims=True))


def _scored(task: str, y: Any, scores: Any, classes: list[str] | None = None) -> _Scored:
    return _Scored(y, scores, point_metrics(task, y, scores, classes))


def _better(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A better model's probabilities: halfway to the truth."""
    q = 0.5 * p + 0.5 * np.eye(p.shape[1])[y]
    return np.asarray(q / q.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("challenger", ["noisier", "better"])
@pytest.mark.parametrize("case", cases.CLASSIFICATION_CASES, ids=lambda c: c.id)
def test_the_interval_holds_the_point_delta_on_edge_cases(
    case: cases.ClassificationCase, challenger: str
) -> None:
    """Draws by the point values' own formulas: the paired interval brackets the delta.

    The gate once drew macro precision and recall over all K classes while the
    point values averaged over the classes present: against the better
    challenger, on a single class or with a predicted class absent from the
    truth, its interval missed its own delta (0.5 outside [0, 0]).
    """
    y, p = case.y, case.proba
    q = _softened(p, seed=len(y)) if challenger == "noisier" else _better(y, p)
    old, new = (_scored(case.task, y, scores, case.classes) for scores in (p, q))
    for name in metric_names("classification"):
        champion, challenger_value, delta, low, high = _compare(
            metric(name), (old, new), 400, 0.95, 1
        )
        if math.isnan(delta):
            assert old.metrics[name] is None or new.metrics[name] is None
            continue
        assert delta == pytest.approx(metric(name).improvement(champion, challenger_value))
        assert low - 1e-12 <= delta <= high + 1e-12, (name, low, delta, high)


@pytest.mark.parametrize("case", cases.REGRESSION_CASES, ids=lambda c: c.id)
def test_the_interval_holds_the_point_delta_on_regression_edge_cases(
    case: cases.RegressionCase,
) -> None:
    old = _scored("regression", case.y, case.pred)
    new = _scored("regression", case.y, (case.pred + case.y) / 2 + 0.5)
    for name in metric_names("regression"):
        _, _, delta, low, high = _compare(metric(name), (old, new), 400, 0.95, 2)
        if not math.isnan(delta):
            assert low - 1e-12 <= delta <= high + 1e-12, (name, low, delta, high)


@pytest.mark.parametrize("name", metric_names("classification"))
def test_the_gate_interval_is_the_paired_bootstrap_of_the_difference(name: str) -> None:
    """Same rows for both models in every resample: the interval of per-resample differences."""
    case = next(c for c in cases.CLASSIFICATION_CASES if c.id == "iris-all-classes")
    y, p, q = case.y, case.proba, _softened(case.proba, seed=3)
    m = metric(name)
    _, _, _, low, high = _compare(
        m,
        (_scored(case.task, y, p, case.classes), _scored(case.task, y, q, case.classes)),
        200,
        0.9,
        5,
    )
    rows = np.random.default_rng(5).integers(0, y.size, size=(200, y.size))
    by_hand = [
        m.improvement(*(point_metrics(case.task, y[r], s[r], case.classes)[name] for s in (p, q)))
        for r in rows
    ]
    assert (low, high) == pytest.approx(tuple(np.quantile(by_hand, [0.05, 0.95])), abs=1e-12)
    same = _scored(case.task, y, p, case.classes)
    assert _compare(m, (same, same), 200, 0.9, 5)[2:] == (0.0, 0.0, 0.0)


def test_the_gate_module_does_not_import_torch() -> None:
    code = "import sys, mlcycle.loop._gate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_min_delta_defaults_to_a_meaningful_gain_relative_for_errors(models: Models) -> None:
    """A tie plus a hair is not worth a rollout: one point of accuracy, 1 % lower rmse."""
    assert GateSpec().min_delta == 0.01
    checks = _metric_checks(metric("accuracy"), 0.90, 0.905, 0.005, (0.001, 0.01), GateSpec(), 1000)
    assert not checks[0][0] and "less than min_delta 0.01" in checks[0][1]
    # rmse 10.0 -> 9.95 is 0.5 % better: rejected; 10.0 -> 9.8 is 2 % better: enough
    small = _metric_checks(metric("rmse"), 10.0, 9.95, 0.05, (0.01, 0.1), GateSpec(), 1000)
    assert not small[0][0] and "min_delta 0.01 (relative)" in small[0][1]
    large = _metric_checks(metric("rmse"), 10.0, 9.8, 0.2, (0.1, 0.3), GateSpec(), 1000)
    assert large[0][0] and large[1][0]


def test_the_gate_command_judges_a_challenger_trained_by_hand(models: Models) -> None:
    """``mlcycle gate`` runs the loop's gate on the test split both models never saw."""
    mlcycle = str(Path(sys.executable).with_name("mlcycle"))
    root = str(models.project.root)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [mlcycle, "-p", root, "gate", *args], capture_output=True, text=True, timeout=300
        )

    better = run("cancer@1", "cancer@2", "--json")
    assert better.returncode == 0, better.stderr
    answer = json.loads(better.stdout)
    expected = gate(models.weak, models.strong, models.cancer, target="target", spec=GateSpec())
    assert answer["promote"] is True
    assert answer["holdout"] == f"breast_cancer@1 (test split, {models.cancer.num_rows} rows)"
    assert answer["delta"] == pytest.approx(expected.delta)
    assert (answer["low"], answer["high"]) == pytest.approx((expected.low, expected.high))

    worse = run("cancer@2", "cancer@1")
    assert worse.returncode == 3, worse.stdout + worse.stderr
    assert (
        worse.stdout.startswith("reject cancer@1 over cancer@2")
        and "did not improve" in worse.stdout
    )

    apart = run("cancer@1", "diabetes@2")
    assert apart.returncode == 1
    assert "name rows neither saw (--data DATASET@VERSION)" in apart.stderr


def _passing_verdict() -> GateVerdict:
    return GateVerdict(
        True, "accuracy", 0.90, 0.93, 0.03, 0.01, 0.05, 500, {}, True, ["accuracy +0.03"], True
    )


def test_audit_limits_reject_a_challenger_whose_audit_is_outside_them() -> None:
    """Every value of a figure (each facet, each eps) must be in range; a missing figure fails."""
    figures = {
        "fairness.DI": {"afam=yes": 0.74, "single=yes": 0.95},
        "robustness.pgd@0.1": {"accuracy": 0.81},
    }
    limits = {
        "fairness.DI": AuditLimitSpec(min=0.8, max=1.25),
        "robustness.pgd@0.1": AuditLimitSpec(min=0.7),
        "robustness.pgd@0.5": AuditLimitSpec(min=0.5),
    }
    verdict = _passing_verdict().with_audit(figures, limits)

    assert not verdict.promote
    assert verdict.audit["fairness.DI"]["ok"] is False
    assert verdict.audit["robustness.pgd@0.1"]["ok"] is True
    assert verdict.audit["robustness.pgd@0.5"]["ok"] is False
    assert any("fairness.DI outside [0.8, 1.25]: afam=yes 0.74" in r for r in verdict.reasons)
    assert not any("single=yes" in r for r in verdict.reasons)  # only what is outside
    assert any(
        "no robustness.pgd@0.5 (it has: fairness.DI, robustness.pgd@0.1)" in r
        for r in verdict.reasons
    )
    assert "accuracy +0.03" not in verdict.reasons  # a rejection lists what failed


def test_a_challenger_within_its_audit_limits_keeps_its_promotion_and_says_why() -> None:
    figures = {"fairness.DI": {"afam=yes": 0.91}, "fairness.DPPL": {"afam=yes": float("nan")}}
    verdict = _passing_verdict().with_audit(
        figures, {"fairness.DI": AuditLimitSpec(min=0.8, max=1.25)}
    )
    assert verdict.promote
    assert verdict.reasons[-1] == "audit: fairness.DI within [0.8, 1.25] (afam=yes 0.91)"
    assert verdict.to_dict()["audit"]["fairness.DI"]["values"] == {"afam=yes": 0.91}
    # a figure the audit could not compute (NaN) is not within any range
    nan = _passing_verdict().with_audit(figures, {"fairness.DPPL": AuditLimitSpec(max=0.1)})
    assert not nan.promote


def test_audit_limits_name_a_kind_and_a_figure() -> None:
    with pytest.raises(ValidationError, match=r"KIND\.FIGURE"):
        GateSpec(audit={"DI": {"min": 0.8}})
    with pytest.raises(ValidationError, match="needs min, max or both"):
        GateSpec(audit={"fairness.DI": {}})
    with pytest.raises(ValidationError, match="above max"):
        GateSpec(audit={"fairness.DI": {"min": 2, "max": 1}})
