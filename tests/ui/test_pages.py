"""The dashboard's pages over HTTP, on a real project: what they show, filter, sort and page."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.ui.conftest import RECORDED, Site


def get(site: Site, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(site.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


def names(page: httpx.Response) -> list[str]:
    """The run names of a runs table, in order."""
    return re.findall(r'<td><a href="/runs/[0-9a-f]{32}">([^<]+)</a>', page.text)


def test_runs_page_lists_every_run_with_its_columns(site: Site) -> None:
    page = get(site, "/runs")
    assert page.status_code == 200
    shown = names(page)
    assert len(shown) == 7 and set(RECORDED) <= set(shown)
    assert "7 runs" in page.text
    assert "iris@1" in page.text  # the trained runs' dataset version
    assert ">mlp<" in page.text  # their model kind
    assert 'class="status failed"' in page.text
    assert "test.accuracy" in page.text  # a headline metric column


def test_runs_filter_by_experiment_status_tag_dataset_and_metric(site: Site) -> None:
    assert sorted(names(get(site, "/runs?experiment=sweep"))) == sorted(RECORDED)
    assert names(get(site, "/runs?status=failed")) == ["sweep-3"]
    assert sorted(names(get(site, "/runs?tag=team%3Db"))) == ["sweep-2", "sweep-3", "sweep-4"]
    assert len(names(get(site, "/runs?dataset=iris"))) == 2
    assert len(names(get(site, "/runs?dataset=iris%402"))) == 0
    found = names(get(site, "/runs", params={"where": "test.accuracy>0.9", "experiment": "sweep"}))
    assert sorted(found) == ["sweep-3", "sweep-4"]
    # a logged metric's last value: val_loss at epoch 3 is 1 - accuracy
    found = names(get(site, "/runs", params={"where": "val_loss<0.08"}))
    assert sorted(found) == ["sweep-3", "sweep-4"]


def test_a_malformed_filter_says_what_is_wrong(site: Site) -> None:
    page = get(site, "/runs", params={"where": "accuracy is high"})
    assert page.status_code == 400
    assert "expected METRIC OP NUMBER" in page.text
    assert get(site, "/runs", params={"tag": "noequals"}).status_code == 400


@pytest.mark.parametrize(
    ("sort", "order", "expected"),
    [
        ("test.accuracy", "desc", ["sweep-4", "sweep-3", "sweep-2", "sweep-1", "sweep-0"]),
        ("test.accuracy", "asc", ["sweep-0", "sweep-1", "sweep-2", "sweep-3", "sweep-4"]),
        ("name", "desc", ["sweep-4", "sweep-3", "sweep-2", "sweep-1", "sweep-0"]),
        ("val_loss", "asc", ["sweep-4", "sweep-3", "sweep-2", "sweep-1", "sweep-0"]),
        ("status", "asc", ["sweep-3"]),  # failed < finished: only its head is checked
    ],
)
def test_runs_sort_by_any_column(site: Site, sort: str, order: str, expected: list[str]) -> None:
    shown = names(get(site, "/runs", params={"experiment": "sweep", "sort": sort, "order": order}))
    assert shown[: len(expected)] == expected


def test_runs_are_paged_by_the_server(site: Site) -> None:
    params = {"sort": "name", "order": "asc", "size": "3"}
    pages = [names(get(site, "/runs", params={**params, "page": str(n)})) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [3, 3, 1]
    everything = [name for p in pages for name in p]
    assert everything == sorted(everything)
    first = get(site, "/runs", params={**params, "page": "1"})
    assert "page 1 of 3" in first.text
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text


def test_run_page_shows_params_curves_report_lineage_and_artifacts(site: Site) -> None:
    run_id = site.trained[0]
    page = get(site, f"/runs/{run_id}")
    assert page.status_code == 200
    record = site.project.runs.get(run_id)
    assert "train.max_epochs" in page.text  # parameters, flattened
    assert f"/artifacts/{record.artifacts['report.html']}" in page.text
    assert "iris@1" in page.text  # lineage: the dataset version
    assert 'href="/models/iris">iris@1</a>' in page.text  # lineage: the version made of it
    for sha in record.artifacts.values():
        assert sha in page.text  # artifacts with their sha256
    assert "device" in page.text  # environment


def test_metrics_endpoint_gives_only_new_epochs(site: Site) -> None:
    run_id = site.trained[0]
    body = get(site, f"/api/runs/{run_id}/metrics").json()
    assert body["status"] == "finished"
    steps = [p[0] for p in body["points"]["val_loss"]]
    assert len(steps) == 2 and steps == sorted(steps)
    later = get(site, f"/api/runs/{run_id}/metrics", params={"after": str(steps[0])}).json()
    assert [p[0] for p in later["points"]["val_loss"]] == steps[1:]
    assert get(site, "/api/runs/nosuchrun/metrics").status_code == 404


def test_compare_shows_params_that_differ_and_curves(site: Site) -> None:
    a, b = site.recorded["sweep-0"], site.recorded["sweep-4"]
    page = get(site, "/compare", params=[("run", a), ("run", b)])
    assert page.status_code == 200
    differ = page.text.split('id="params-differ"')[1].split("</table>")[0]
    assert ">lr<" in differ
    assert "val_loss" in page.text  # curves embedded for the plot
    assert get(site, "/compare").status_code == 400


def test_models_page_versions_aliases_history_card_and_diff(site: Site) -> None:
    assert "@champion" in get(site, "/models").text
    page = get(site, "/models/iris")
    assert page.status_code == 200
    version = site.project.store.registry.get("iris@1")
    assert f"/artifacts/{version.files['card.html']}" in page.text
    assert "registered version 2" in page.text
    lineage = page.text.split('id="versions"')[1].split("</table>")[0]
    assert f"iris@1 → run {site.trained[0][:8]} → v1" in lineage
    card = get(site, f"/artifacts/{version.files['card.html']}")
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/html")
    assert "sandbox" in card.headers["content-security-policy"]
    assert 'href="/reports"' in card.text  # a way back into the dashboard
    diff = get(site, "/models/iris/diff", params={"a": "1", "b": "2"})
    assert diff.status_code == 200
    assert "train.seed" in diff.text and 'class="differs"' in diff.text
    assert get(site, "/models/nosuchmodel").status_code == 404


def test_reports_index_lists_every_html_report_with_its_subject(site: Site) -> None:
    page = get(site, "/reports")
    assert page.status_code == 200
    for run_id in site.trained:
        sha = site.project.runs.get(run_id).artifacts["report.html"]
        assert f"/artifacts/{sha}" in page.text
    card = site.project.store.registry.get("iris@1").files["card.html"]
    assert f"/artifacts/{card}" in page.text
    assert 'href="/models/iris">iris@1</a>' in page.text


def test_one_shared_plotly_served_from_the_package(site: Site) -> None:
    page = get(site, "/runs")
    assert '<script src="/static/plotly.min.js"' in page.text
    assert "cdn" not in page.text.lower()
    js = get(site, "/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000


def test_host_header_of_another_name_is_refused(site: Site) -> None:
    assert get(site, "/runs", headers={"Host": "attacker.example"}).status_code == 421
    assert get(site, "/runs", headers={"Host": "localhost:5000"}).status_code == 200


def test_model_page_shows_the_loop_and_its_story(site: Site) -> None:
    from mlcycle.store import LoopState, write_state

    state = LoopState(phase="watching", cycle=1, champion=1)
    write_state(
        site.project.store,
        "iris",
        state,
        action="triggered",
        reason="drift in petal_length",
        actor="loop",
    )
    page = get(site, "/models/iris")
    decisions = page.text.split('id="decisions"')[1].split("</table>")[0]
    assert "triggered" in decisions and "drift in petal_length" in decisions
    assert "phase <b>watching</b>" in page.text
    assert "the champion answers every request" in page.text
    from mlcycle.store import Traffic, set_traffic

    set_traffic(site.project.store, "iris", Traffic(2, "canary", 25.0), actor="loop", reason="t")
    assert "version 2 answers 25% (canary)" in get(site, "/models/iris").text
    set_traffic(site.project.store, "iris", Traffic(None, "off", 0.0), actor="loop", reason="t")
    assert "no monitoring report yet" in page.text
    story = get(site, "/models/iris/story")
    assert story.status_code == 200
    assert "drift in petal_length" in story.text
    assert "sandbox" in story.headers["content-security-policy"]


def test_the_app_mounted_under_a_prefix_links_within_it(site: Site) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from mlcycle.serve import serve_in_thread
    from mlcycle.ui import create_app

    outer = Starlette(routes=[Mount("/dashboard", create_app(site.project))])
    with serve_in_thread(outer) as url:
        page = httpx.get(f"{url}/dashboard/runs", timeout=30)
        home = httpx.get(f"{url}/dashboard/", timeout=30)
        js = httpx.get(f"{url}/dashboard/static/plotly.min.js", timeout=30)
        refused = httpx.get(f"{url}/dashboard/runs", headers={"Host": "evil.test"}, timeout=30)
    assert page.status_code == 200 and js.status_code == 200
    assert home.status_code == 303 and home.headers["location"] == "/dashboard/runs"
    assert 'src="/dashboard/static/plotly.min.js"' in page.text
    assert 'data-base="/dashboard"' in page.text
    hrefs = re.findall(r'href="([^"]+)"', page.text)
    assert hrefs and all(h.startswith(("/dashboard/", "data:")) for h in hrefs), hrefs
    assert refused.status_code == 421


def test_a_stored_report_is_served_with_the_shared_plotly(site: Site) -> None:
    sha = site.project.runs.get(site.trained[0]).artifacts["report.html"]
    stored = site.project.artifacts.read_bytes(sha)
    assert b"* plotly.js v" in stored  # self-contained in the store: it opens offline alone
    served = get(site, f"/artifacts/{sha}")
    assert served.status_code == 200
    assert (
        "* plotly.js v" not in served.text and '<script src="/static/plotly.min.js">' in served.text
    )
    assert len(served.content) < len(stored) - 1_000_000
    assert "Plotly.newPlot" in served.text  # the figures themselves are still there
