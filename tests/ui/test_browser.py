"""The dashboard in a real browser: Playwright driving Debian's Chromium (never a downloaded one).

Every page (monitoring, the loop and deployments over the watched model's records
included) loads without a console error, a filter and a comparison work,
and an alias moves through the login form. Screenshots of every page are
kept in the test's folder and copied to ``ui-shots/`` at the repository's root
(git ignores it; ``MLCYCLE_UI_SHOTS`` names another folder) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.conftest import TOKEN, Site

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests drive Debian's Chromium at {CHROMIUM}: apt-get install chromium"
        )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Pages:
    """One browser tab that records console errors and takes named screenshots."""

    def __init__(self, browser: object, shots: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.shots = shots

    def open(self, url: str, shot: str, wait_for: str | None = None, idle: bool = True) -> None:
        """Load ``url`` and take its screenshot; ``idle=False`` for a page that fetches nothing
        after it loads (its scripts have run by ``load``), saving the wait for a quiet network."""
        response = self.page.goto(url, wait_until="networkidle" if idle else "load")
        assert response is not None and response.status == 200, url
        if wait_for:
            self.page.wait_for_selector(wait_for, timeout=15_000)
        self.shot(shot)
        assert self.errors == [], f"{url}: {self.errors}"

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: object, tmp_path: Path) -> Iterator[Pages]:
    pages = Pages(browser, tmp_path)
    yield pages
    pages.context.close()
    keep_shots(tmp_path)


def keep_shots(folder: Path) -> None:
    """Copy the screenshots in ``folder`` where a person looks at them."""
    kept = Path(os.environ.get("MLCYCLE_UI_SHOTS") or Path(__file__).parents[2] / "ui-shots")
    kept.mkdir(parents=True, exist_ok=True)
    for png in folder.glob("*.png"):
        shutil.copy(png, kept / png.name)


def test_every_page_loads_without_console_errors(site: Site, served: str, tab: Pages) -> None:
    run_id = site.trained[0]
    a, b = site.recorded["sweep-0"], site.recorded["sweep-4"]
    tab.open(f"{site.url}/runs", "runs")
    tab.open(f"{site.url}/runs/{run_id}", "run", wait_for="#curves .main-svg")
    tab.open(f"{site.url}/compare?run={a}&run={b}", "compare", wait_for="#compare-curves .main-svg")
    tab.open(f"{site.url}/studies", "studies")
    tab.open(f"{site.url}/models", "models")
    tab.open(f"{site.url}/models/iris", "model")
    tab.open(f"{site.url}/models/iris/diff?a=1&b=2", "diff")
    tab.open(f"{site.url}/models/iris/story", "story")
    tab.open(f"{site.url}/reports", "reports")
    # server-rendered pages whose plots are drawn from data in the page: no fetch to wait for
    tab.open(f"{site.url}/monitoring", "monitoring", idle=False)
    tab.open(
        f"{site.url}/monitoring/{served}", "monitoring-model", "#ood-plot .main-svg", idle=False
    )
    tab.open(f"{site.url}/loop", "loop", idle=False)
    tab.open(f"{site.url}/deployments", "deployments", ".deployment .main-svg", idle=False)
    tab.open(f"{site.url}/models/{served}", "model-lineage", idle=False)
    card = site.project.store.registry.get("iris@1").files["card.html"]
    tab.open(f"{site.url}/artifacts/{card}", "card")
    report = site.project.runs.get(run_id).artifacts["report.html"]  # drawn by the shared plotly
    tab.open(f"{site.url}/artifacts/{report}", "run-report", wait_for=".main-svg", idle=False)


def test_filter_and_compare_in_the_browser(site: Site, tab: Pages) -> None:
    tab.open(f"{site.url}/runs", "runs-before-filter")
    tab.page.fill("input[name=experiment]", "sweep")
    tab.page.fill("input[name=where]", "test.accuracy>0.9")
    tab.page.click("#filters button[type=submit]")
    tab.page.wait_for_url("**/runs?*where=*")
    rows = tab.page.locator("#runs tbody tr[data-run]")
    assert rows.count() == 2
    tab.shot("runs-filtered")
    for box in tab.page.locator("#runs tbody input[type=checkbox]").all():
        box.check()
    tab.page.click("#compare-form button[type=submit]")
    tab.page.wait_for_selector("#compare-curves .main-svg", timeout=15_000)
    assert tab.page.locator("#params-differ").inner_text().count("lr") == 1
    tab.shot("compare-from-table")
    assert tab.errors == []


def test_alias_move_through_the_login_form(site: Site, tab: Pages) -> None:
    registry = site.project.store.registry
    before = registry.get("iris@champion").version
    target = 2 if before == 1 else 1
    tab.open(f"{site.url}/models/iris", "model-logged-out")
    assert tab.page.locator("#alias-form").is_hidden()
    messages: list[str] = []
    tab.page.on("dialog", lambda d: (messages.append(d.message), d.accept()))
    tab.page.fill("#token", "wrong-token")
    tab.page.click("#login-form button")
    tab.page.wait_for_timeout(300)
    assert messages and "wrong admin token" in messages[0]
    assert tab.page.locator("#alias-form").is_hidden()
    tab.page.fill("#token", TOKEN)
    tab.page.click("#login-form button")
    tab.page.wait_for_selector("#alias-form", state="visible")
    assert TOKEN not in tab.page.url
    tab.page.fill("#alias-form input[name=alias]", "champion")
    tab.page.select_option("#alias-form select[name=version]", str(target))
    tab.page.fill("#alias-form input[name=reason]", "chosen in the browser")
    with tab.page.expect_navigation():
        tab.page.click("#alias-form button")
    tab.page.wait_for_selector("text=chosen in the browser")
    tab.shot("model-after-move")
    assert registry.get("iris@champion").version == target
    assert registry.history("iris", "champion")[-1].reason == "chosen in the browser"
    # a console error is expected only from the refused login (the 403 the page answered)
    assert all("403" in e for e in tab.errors), tab.errors


def test_a_running_run_page_follows_new_epochs(browser: object, tmp_path: Path) -> None:
    from mlcycle import Project
    from mlcycle.serve import serve_in_thread
    from mlcycle.ui import create_app

    project = Project.init(tmp_path / "live", name="live")
    tab = Pages(browser, tmp_path)
    try:
        run = project.runs.start("still-training", params={"lr": 0.1})
        run.log_metrics(0, {"val_loss": 0.9})
        app = create_app(project)
        with serve_in_thread(app) as url:
            tab.page.goto(f"{url}/runs/{run.id}", wait_until="networkidle")
            tab.page.wait_for_selector("#curves .main-svg")
            points = "document.getElementById('curves').data[0].x.length"
            assert tab.page.evaluate(points) == 1
            run.log_metrics(1, {"val_loss": 0.7})
            run.log_metrics(2, {"val_loss": 0.5})
            tab.page.wait_for_function(f"{points} === 3", timeout=15_000)
            run.finish("finished")
            tab.page.wait_for_selector("#run-status.finished", timeout=15_000)
            tab.shot("run-live")
        assert tab.errors == []
    finally:
        tab.context.close()
        project.close()
        keep_shots(tmp_path)
