"""The studies page over a real (tiny) Optuna study: its trials, best trial and report link."""

from __future__ import annotations

from pathlib import Path

import httpx

from mlcycle import Project
from mlcycle.serve import serve_in_thread
from mlcycle.tune import tune
from mlcycle.ui import create_app


def test_studies_page_lists_a_study_with_its_trials_best_and_report(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", name="studies") as project:
        summary = tune(
            project,
            data="sklearn:iris",
            name="tiny",
            n_trials=2,
            seed=0,
            pruner="none",
            overrides={"max_epochs": 2},
        )
        assert summary.best is not None
        study = project.runs.get(summary.run_id)
        with serve_in_thread(create_app(project)) as url:
            empty_filter = httpx.get(f"{url}/runs", params={"tag": "study=other"}).text
            page = httpx.get(f"{url}/studies", timeout=30)
            trials = httpx.get(f"{url}/runs", params={"tag": "study=tiny"}, timeout=30)
        assert page.status_code == 200
        assert 'href="/runs?tag=study%3Dtiny"' in page.text
        assert "2 complete" in page.text
        assert f'href="/runs/{summary.best["run_id"]}"' in page.text
        assert f"/artifacts/{study.artifacts['study.html']}" in page.text
        assert f"/runs/{summary.best['run_id']}" in trials.text  # the trials link to their runs
        assert "no runs match" in empty_filter
