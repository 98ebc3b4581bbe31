"""A monitoring run against a registered model: files, the prediction log, alerts, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mlcycle import NotFoundError, Project
from mlcycle.monitor import monitor, parse_since
from mlcycle.predictions import LoggedBatch, PredictionLog
from mlcycle.registry import load, register
from mlcycle.train import train

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = Path(tmp_path_factory.mktemp("monitor")) / "proj"
    with Project.init(root, name="proj") as p:
        run = train(p, data="sklearn:breast_cancer", overrides={"max_epochs": 10}).run_id
        register(p, run, "cancer", alias="champion")
        yield p


def _rows(project: Project, part: str = "test") -> pa.Table:
    return project.datasets.load_split("breast_cancer@1")[part].drop_columns(["target"])


def _shifted(table: pa.Table, columns: list[str], factor: float) -> pa.Table:
    for name in columns:
        i = table.column_names.index(name)
        table = table.set_column(i, name, pc.multiply(table.column(name), factor))
    return table


def test_unseen_rows_from_the_same_data_are_healthy(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "now.parquet"
    pq.write_table(_rows(project, "validation"), path)
    result = monitor(project, "cancer@champion", current=path)
    assert result.healthy, result.alerts
    assert not result.features.drift and not result.prediction.drift
    assert {c.column for c in result.features.columns} == set(_rows(project).column_names)
    assert {c.test for c in result.features.columns} == {"ks"}  # small reference: KS


def test_a_shift_in_some_inputs_raises_an_alert_with_an_event(
    project: Project, tmp_path: Path
) -> None:
    moved = ["mean_radius", "mean_perimeter", "mean_area", "worst_radius", "worst_area"]
    path = tmp_path / "shifted.csv"
    table = _shifted(_rows(project, "train"), moved, 1.6)
    import pyarrow.csv as pcsv

    pcsv.write_csv(table, path)
    result = monitor(project, "cancer@champion", current=path)
    assert not result.healthy
    drifted = set(result.features.drifted_columns)
    assert set(moved) <= drifted
    alerts = project.store.list_events(entity_type="model", entity_id="cancer")
    assert any(e.action == "monitor.alert" for e in alerts)
    report = json.loads(project.artifacts.read_bytes(result.report_sha256))
    assert report["features"]["dataset"]["n_current"] == table.num_rows


def test_the_prediction_log_window_is_monitored(project: Project) -> None:
    model = load("cancer@champion", project=project)
    log = PredictionLog(project.root / ".mlcycle" / "log")
    for chunk, shift in (
        (_rows(project, "validation"), 1.0),
        (_rows(project, "train").slice(0, 200), 2.0),
    ):
        shifted = _shifted(chunk, ["mean_texture", "worst_texture", "texture_error"], shift)
        feeds = model.feeds(shifted)
        out = model.run(feeds)
        log.append(
            LoggedBatch(
                "cancer",
                1,
                "serve",
                [f"r{i}" for i in range(chunk.num_rows)],
                feeds,
                1.0,
                labels=out.labels,
                probabilities=out.probabilities,
            )
        )
    log.close()
    recent = monitor(project, "cancer@champion", last=200)
    assert {"mean_texture", "worst_texture", "texture_error"} <= set(
        recent.features.drifted_columns
    )
    assert recent.features.to_dict()["dataset"]["n_current"] == 200
    with pytest.raises(NotFoundError, match="has no rows in this window"):
        monitor(project, "cancer@champion", since=parse_since("0s"))


def test_the_cli_exit_code_gates_a_cron_job(project: Project, tmp_path: Path) -> None:
    healthy = tmp_path / "ok.parquet"
    pq.write_table(_rows(project, "validation"), healthy)
    done = subprocess.run(
        [MLCYCLE, "monitor", "cancer@champion", "--current", str(healthy), "--json"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["healthy"] is True
    assert all({"column", "test", "statistic", "drift"} <= set(c) for c in result["columns"])
    drifted = tmp_path / "bad.parquet"
    pq.write_table(_shifted(_rows(project, "train"), ["mean_radius", "worst_radius"], 3.0), drifted)
    done = subprocess.run(
        [MLCYCLE, "monitor", "cancer@champion", "--current", str(drifted)],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3
    assert "alert:" in done.stdout and "mean_radius" in done.stdout
    bad = subprocess.run(
        [MLCYCLE, "monitor", "cancer@champion", "--since", "soon"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: --since 'soon'")
    assert np.isfinite(result["dataset"]["share_drifted"])
