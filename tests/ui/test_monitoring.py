"""The monitoring pages over real monitoring runs: drift, performance and OOD over time, alerts."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np

from mlcycle.monitor import MonitorResult
from tests.ui.conftest import WATCHED, Site


def get(site: Site, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(site.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


def plot(page: httpx.Response, name: str) -> dict[str, object]:
    found = re.search(
        rf'<script type="application/json" id="{name}-data">(.*?)</script>', page.text
    )
    assert found, f"no {name} plot"
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_monitoring_index_lists_models_with_their_last_run_and_alerts(
    site: Site, watched: list[MonitorResult]
) -> None:
    page = get(site, "/monitoring")
    assert page.status_code == 200
    rows = page.text.split('id="monitored"')[1].split("</table>")[0]
    assert f'href="/monitoring/{WATCHED}"' in rows
    assert "never monitored" in rows  # the iris model
    latest = watched[-1]
    assert f"{len(latest.alerts)} alert" in rows
    alerts = page.text.split('id="alerts"')[1].split("</table>")[0]
    assert "feature drift in petal_length_cm" in alerts
    assert 'href="/monitoring">Monitoring</a>' in page.text  # in the nav


def test_model_monitoring_draws_each_signal_over_time(
    site: Site, watched: list[MonitorResult]
) -> None:
    page = get(site, f"/monitoring/{WATCHED}")
    assert page.status_code == 200
    drift = plot(page, "drift")
    traces = {t["name"].split(" ")[0]: t for t in drift["traces"]}  # type: ignore[attr-defined,index]
    assert set(traces) == {c.column for c in watched[0].features.columns}
    petal = traces["petal_length_cm"]
    assert len(petal["x"]) == 2
    statistics = [
        c.statistic for r in watched for c in r.features.columns if c.column == "petal_length_cm"
    ]
    assert petal["y"] == statistics
    assert petal["y"][1] > petal["y"][0]
    performance = plot(page, "performance")
    names = [t["name"] for t in performance["traces"]]  # type: ignore[attr-defined,index]
    assert names == ["realised accuracy", "estimated accuracy (CBPE)"]
    realised = performance["traces"][0]  # type: ignore[index]
    assert realised["y"] == [r.performance.value for r in watched if r.performance]
    ood = plot(page, "ood")
    assert ood["traces"][0]["y"] == [r.ood["share"] for r in watched if r.ood]  # type: ignore[index]
    assert "fairness-data" not in page.text  # iris has no sensitive column: no empty plot
    alerts = page.text.split('id="alerts"')[1].split("</table>")[0]
    assert "feature drift in petal_length_cm" in alerts
    html = site.project.store.list_events(entity_id=WATCHED, action="monitor.report", limit=1)
    assert f"/artifacts/{html[0].details['html']}" in alerts  # each alert links its report
    assert page.text.count('<td class="num">') >= 2  # one row per run


def test_model_monitoring_is_bounded_and_says_unknown_models(
    site: Site, watched: list[MonitorResult]
) -> None:
    page = get(site, f"/monitoring/{WATCHED}", params={"last": "1"})
    assert len(plot(page, "drift")["traces"][0]["x"]) == 1  # type: ignore[index]
    assert "the newest 1 monitoring run " in page.text and "?last=4" in page.text
    assert get(site, "/monitoring/nosuchmodel").status_code == 404


def test_fairness_differences_are_drawn_per_sensitive_column(
    site: Site, watched: list[MonitorResult]
) -> None:
    """Iris has no sensitive column: the fairness of two windows, from Fairlearn's metrics as a
    monitoring run computes them, laid into the watched model's real reports."""
    from mlcycle.monitor import fairness_report
    from mlcycle.ui._monitoring import Series

    spec = site.project.spec.monitor.fairness
    rng = np.random.default_rng(0)
    groups = np.array(["a", "b"] * 100, dtype=object)
    series = Series()
    for n, result in enumerate(watched):
        # group b is chosen more often in the second window
        chosen = rng.random(200) < np.where(groups == "b", 0.3 + 0.4 * n, 0.3)
        truth = np.where(rng.random(200) < 0.5, "yes", "no")
        fair = fairness_report(
            np.where(chosen, "yes", "no"),
            {"group": groups},
            y_true=truth,
            positive_label="yes",
            spec=spec,
        )
        report = {**result.report, "fairness": {k: v.to_dict() for k, v in fair.items()}}
        series.add(f"2026-01-0{n + 1}T00:00:00+00:00", report)
    fairness = series.plots()["fairness"]
    lines = {t["name"]: t["y"] for t in fairness["traces"]}
    assert set(lines) == {"group: parity", "group: equalized odds"}
    parity = lines["group: parity"]
    assert parity[1] > parity[0] + 0.2
