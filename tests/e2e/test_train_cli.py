"""``mlcycle train`` / ``evaluate`` / ``runs compare`` as a user runs them, kill and resume included."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.store import MetadataStore
from mlcycle.train import train
from tests.e2e.test_cli import MLCYCLE, mlcycle

SLOW_DIGITS = [
    "--data",
    "digits",
    "--set",
    "max_epochs=10",
    "--set",
    "early_stopping.patience=100",
    "--set",
    "model.hidden=[256, 256]",
    "--set",
    "batch_size=8",
    "--set",
    "checkpoint_interval_s=0",
    "--quiet",
    "--json",
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    # Made in this process: the README tour and test_cli run the CLI's init and data add.
    root = tmp_path / "proj"
    with Project.init(root, name="proj") as made:
        made.datasets.add("sklearn:digits")
    return root


def test_train_json_prints_the_run_id_and_test_metrics(project: Path) -> None:
    done = mlcycle("train", "--data", "digits", "--set", "max_epochs=3", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) >= {"run_id", "test", "report"}
    assert 0.5 < result["test"]["accuracy"] <= 1.0
    assert Path(result["report"]).is_file()

    again = mlcycle("evaluate", result["run_id"][:8], "--json", cwd=project)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["test"] == result["test"]

    table = mlcycle("evaluate", result["run_id"], cwd=project)
    assert "accuracy" in table.stdout and "95% CI" in table.stdout


def test_train_shows_a_progress_bar_unless_quiet(project: Path) -> None:
    loud = mlcycle("train", "--set", "max_epochs=2", cwd=project)
    assert loud.returncode == 0, loud.stderr
    assert "epoch" in loud.stderr and "val loss" in loud.stderr
    assert "report:" in loud.stdout
    quiet = mlcycle("train", "--set", "max_epochs=2", "--quiet", cwd=project)
    assert quiet.stderr == ""


def test_runs_compare_puts_runs_side_by_side(project: Path) -> None:
    ids = []
    for lr, architecture in (
        ("0.01", []),
        (
            "0.001",
            [
                *("--set", "model.hidden=[32, 16]", "--set", "model.dropout=0.3"),
                *("--set", "early_stopping.patience=3", "--set", "schedule.kind=cosine"),
            ],
        ),
    ):
        done = mlcycle(
            "train",
            "--set",
            "max_epochs=2",
            "--set",
            f"lr={lr}",
            *architecture,
            "--json",
            cwd=project,
        )
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)["run_id"])
    done = mlcycle("runs", "compare", *ids, "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert rows["train.lr"] == [0.01, 0.001]
    # Every parameter that differs, nested ones by their dotted path.
    assert rows["train.model.hidden"] == [[128, 64], [32, 16]]
    assert rows["train.model.dropout"] == [0.1, 0.3]
    assert rows["train.early_stopping.patience"] == [10, 3]
    assert rows["train.schedule.kind"] == ["constant", "cosine"]
    assert "train.batch_size" not in rows  # equal: left out unless --all
    assert len(rows["test.accuracy"]) == 2
    everything = json.loads(mlcycle("runs", "compare", *ids, "--all", "--json", cwd=project).stdout)
    assert everything["rows"]["train.batch_size"] == [64, 64]
    table = mlcycle("runs", "compare", *ids, cwd=project)
    assert "train.lr" in table.stdout and ids[0][:8] in table.stdout
    assert "train.model.hidden" in table.stdout and "[32, 16]" in table.stdout
    assert "parameters are equal" in table.stdout


def test_the_best_epoch_is_counted_from_one_everywhere(project: Path) -> None:
    done = mlcycle("train", "--set", "max_epochs=4", "--set", "evaluate.bootstrap=0", cwd=project)
    assert done.returncode == 0, done.stderr
    found = re.search(r"best epoch (\d+) of (\d+)", done.stdout)
    assert found is not None, done.stdout
    best, epochs = int(found[1]), int(found[2])
    run_id = re.search(r"run (\w{32})", done.stdout)[1]  # type: ignore[index]
    shown = json.loads(mlcycle("runs", "show", run_id, "--json", cwd=project).stdout)
    assert shown["summary"]["best_epoch"] == best and shown["summary"]["epochs_run"] == epochs
    losses = [p["value"] for p in shown["metrics"]["val_loss"]]
    assert best == losses.index(min(losses)) + 1
    table = mlcycle("runs", "show", run_id, cwd=project).stdout
    assert re.search(rf"best_epoch\s+{best}\b", table), table
    compared = json.loads(mlcycle("runs", "compare", run_id, "--json", cwd=project).stdout)
    assert compared["rows"]["best_epoch"] == [best]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "lr"), "error: --set 'lr': expected key=value"),
        (("--set", "lr=-1"), "error: train.lr: -1 is not > 0"),
        (("--set", "lrr=1"), "error: --set lrr: train.lrr names no field of the spec"),
        (
            ("--model", "transformer"),
            "error: train.model.kind: 'transformer': unknown model kind; registered: cnn, custom, gbm, linear, mlp",
        ),
        (("--data", "nope"), "error: dataset 'nope' does not exist; known: digits"),
    ],
)
def test_bad_training_flags_are_one_line(
    project: Path, args: tuple[str, ...], message: str
) -> None:
    done = mlcycle("train", *args, cwd=project)
    assert done.returncode == 1
    assert done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr


def _weights(project: Path, run_id: str) -> tuple[str, str]:
    store = MetadataStore(f"sqlite:///{project / '.mlcycle' / 'mlcycle.db'}")
    try:
        run = store.get_run(run_id)
        return run.artifacts["model/weights.safetensors"], run.artifacts[
            "checkpoint/state.safetensors"
        ]
    finally:
        store.close()


def _store(project: Path) -> MetadataStore:
    return MetadataStore(f"sqlite:///{project / '.mlcycle' / 'mlcycle.db'}")


def _wait_for_epochs(store: MetadataStore, proc: subprocess.Popen[bytes], epochs: int) -> str:
    """The id of the run ``proc`` trains, once it has recorded ``epochs`` epochs.

    Waits on the run's progress in the store, however slow the machine; fails
    at once, with the process's own words, if it exits first.
    """
    while proc.poll() is None:
        running = store.list_runs(status="running")
        if running and len(store.get_metrics(running[0].id, "train_loss")) >= epochs:
            return running[0].id
        time.sleep(0.02)
    _, err = proc.communicate()
    pytest.fail(f"training exited ({proc.returncode}) before {epochs} epochs: {err.decode()}")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # waits on progress: a loaded machine is slow, not wrong
def test_a_killed_training_process_resumes_to_the_same_weights(project: Path) -> None:
    reference = mlcycle("train", *SLOW_DIGITS, cwd=project)
    assert reference.returncode == 0, reference.stderr
    expected = _weights(project, json.loads(reference.stdout)["run_id"])

    store = _store(project)
    with subprocess.Popen(
        [MLCYCLE, "train", *SLOW_DIGITS],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        run_id = _wait_for_epochs(store, proc, 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = store.get_run(run_id)
    epochs_before = len(store.get_metrics(run_id, "train_loss"))
    store.close()
    assert killed.status == "running"  # the process died without a word
    assert 3 <= epochs_before < 10

    # Its heartbeat goes stale: from then on it shows as interrupted, with the command
    # that continues it. A short staleness limit keeps the wait short.
    assert killed.heartbeat_at is not None and killed.heartbeat_every_s is not None
    stale_after = max(1.0, 5 * killed.heartbeat_every_s)
    quick = {"MLCYCLE_RUN_STALE_AFTER_S": "1"}
    wait = (killed.heartbeat_at - datetime.now(UTC)).total_seconds() + stale_after + 0.5
    time.sleep(max(0.0, wait))
    listed = mlcycle("runs", "list", "--json", cwd=project, env=quick)
    [entry] = [r for r in json.loads(listed.stdout) if r["id"] == run_id]
    assert entry["status"] == "interrupted"
    assert entry["resume"] == f"mlcycle train --resume {run_id}"
    table = mlcycle("runs", "list", cwd=project, env=quick).stdout
    assert "interrupted" in table and f"mlcycle train --resume {run_id}" in table
    shown = mlcycle("runs", "show", run_id[:10], cwd=project, env=quick).stdout
    assert "interrupted" in shown and f"mlcycle train --resume {run_id}" in shown
    command = entry["resume"].split()[1:]  # as printed, after "mlcycle"
    resumed = mlcycle(*command, "--quiet", "--json", cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["run_id"] == run_id
    assert _weights(project, run_id) == expected

    store = _store(project)
    try:
        steps = [p.step for p in store.get_metrics(run_id, "train_loss")]
        assert steps == list(range(10))
        assert store.get_run(run_id).status == "finished"
        actions = [e.action for e in store.list_events(entity_type="run", entity_id=run_id)]
        assert "run.resumed" in actions
    finally:
        store.close()
    again = mlcycle("train", "--resume", run_id, cwd=project)
    assert again.returncode == 1
    assert "is finished: there is nothing to resume" in again.stderr


def test_evaluate_cuts_a_numeric_slice_into_quantile_bins(tmp_path: Path) -> None:
    root = tmp_path / "proj"  # the run is made in this process: `evaluate` is the subject
    with Project.init(root, name="proj") as made:
        made.datasets.add("sklearn:wine")
        overrides = {"max_epochs": 3, "evaluate.bootstrap": 0}
        run_id = train(made, data="wine", overrides=overrides, quiet=True).run_id

    shown = mlcycle("evaluate", run_id, "--slice", "alcohol", "--bins", "3", "--json", cwd=root)
    assert shown.returncode == 0, shown.stderr
    slices = json.loads(shown.stdout)["slices"]["alcohol"]
    assert len(slices) == 3  # 27 test rows of a continuous column: 3 bins, not a slice per value
    lows = [s["bin"][0] for s in slices.values()]
    assert lows == sorted(lows)
    assert sum(s["n"] for s in slices.values()) == 27

    table = mlcycle("evaluate", run_id, "--slice", "alcohol", "--bins", "3", cwd=root)
    assert table.returncode == 0, table.stderr
    assert "alcohol (numeric: 3 quantile bins)" in table.stdout
    labels = list(slices)
    assert all(label in table.stdout for label in labels)
    assert table.stdout.index(labels[0]) < table.stdout.index(labels[-1])

    bad = mlcycle("evaluate", run_id, "--slice", "alcohol", "--bins", "1", cwd=root)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: evaluate.bins: 1 is not >= 2"), bad.stderr
