"""``mlcycle tune``, ``tune show``, ``tune list`` as a user runs them; the best trial serves."""

from __future__ import annotations

import json
import math
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests._servers import wait_ready
from tests.tune._studies import MLCYCLE, free_port, mlcycle

SETOSA = {
    "sepal_length_cm": 5.1,
    "sepal_width_cm": 3.5,
    "petal_length_cm": 1.4,
    "petal_width_cm": 0.2,
}
CLASSES = {"setosa", "versicolor", "virginica"}


@pytest.mark.slow  # a 3-trial study, show, list, register and a served process: 30-60 s
def test_tune_show_list_then_the_best_trial_registers_and_serves(tmp_path: Path) -> None:
    assert mlcycle("init", "proj", cwd=tmp_path).returncode == 0
    root = tmp_path / "proj"
    done = mlcycle(
        "tune", "--data", "sklearn:iris", "--trials", "3", "--seed", "0",
        "--set", "max_epochs=3", "--name", "first", "--json", cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    study = json.loads(done.stdout)  # stdout is the JSON alone: no progress bar on it
    assert study["name"] == "first" and study["dataset"] == "iris@1"
    assert study["storage"] == "journal" and study["n_trials"] == 3
    assert study["objectives"] == [{"name": "accuracy", "direction": "maximize"}]
    counts = study["trials"]
    assert counts["complete"] + counts["pruned"] == 3 and counts["failed"] == 0
    assert study["epochs_trained"] <= 9 and study["elapsed_s"] > 0
    assert study["pareto"] == [] and study["picked"] is None
    best = study["best"]
    assert set(best["params"]) >= {"lr", "batch_size", "model.activation", "model.depth"}
    assert 0 <= best["values"]["accuracy"] <= 1 and best["epochs"] == 3
    assert set(best["test"]) >= {"accuracy", "f1_macro", "log_loss"}
    assert Path(study["report"]).is_file() and Path(best["report"]).is_file()

    shown = json.loads(mlcycle("tune", "show", "first", "--json", cwd=root).stdout)
    assert (shown["study"], shown["run_id"], shown["status"]) == (
        "first",
        study["run_id"],
        "finished",
    )
    assert [t["trial"] for t in shown["trials"]] == [0, 1, 2]
    statuses = [t["status"] for t in shown["trials"]]
    assert statuses.count("finished") == counts["complete"]
    assert statuses.count("pruned") == counts["pruned"]
    [row] = [t for t in shown["trials"] if t["run_id"] == best["run_id"]]
    assert row["val"]["accuracy"] == best["values"]["accuracy"] and row["epochs"] == 3
    assert row["overrides"]["train.lr"] == best["params"]["lr"]
    assert shown["summary"]["best"]["run_id"] == best["run_id"]
    # A study is found by its run id's prefix too; the table names each trial's run.
    text = mlcycle("tune", "show", study["run_id"][:8], cwd=root)
    assert text.returncode == 0, text.stderr
    assert f"study first (run {study['run_id'][:8]}, finished)" in text.stdout
    for t in shown["trials"]:
        assert t["run_id"][:8] in text.stdout

    listed = json.loads(mlcycle("tune", "list", "--json", cwd=root).stdout)
    assert [(r["study"], r["status"], r["dataset"]) for r in listed] == [
        ("first", "finished", "iris@1")
    ]
    assert listed[0]["objectives"] == ["accuracy"] and listed[0]["trials"] == counts
    assert listed[0]["best"] == best["values"] and listed[0]["best_run"] == best["run_id"]

    registered = mlcycle("register", best["run_id"], "--name", "x", "--json", cwd=root)
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["ref"] == "x@1"

    port = free_port()
    server = subprocess.Popen(
        [MLCYCLE, "serve", "x@1", "--port", str(port)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(server, url, timeout=90)
        reply = httpx.post(f"{url}/predict", json={"records": [SETOSA]}, timeout=30)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert (answer["model"], answer["version"]) == ("x", 1)
        [label] = answer["labels"]
        [probabilities] = answer["probabilities"]
        assert set(probabilities) == CLASSES and label in CLASSES
        assert math.isclose(sum(probabilities.values()), 1.0, rel_tol=1e-4)
        assert label == max(probabilities, key=lambda c: probabilities[c])
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        assert server.stderr is not None
        server.stderr.close()


@pytest.mark.slow  # a 2-trial study through the CLI with the progress bar: 10-20 s
def test_tune_without_json_prints_the_study_and_how_to_register(tmp_path: Path) -> None:
    assert mlcycle("init", "proj", cwd=tmp_path).returncode == 0
    root = tmp_path / "proj"
    done = mlcycle(
        "tune", "--data", "sklearn:iris", "--trials", "2", "--seed", "0", "--name", "plain",
        "--set", "max_epochs=2", "--objective", "accuracy,parameters",
        "--pick", "parameters where accuracy>=0", cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("study plain on iris@1: ")
    assert "picked: trial " in out and "; test accuracy " in out
    assert "register it: mlcycle register " in out
    assert "report: " in out and "study-plain.html" in out
    assert "trial" in done.stderr  # the progress bar, on stderr
    shown = json.loads(mlcycle("tune", "show", "plain", "--json", cwd=root).stdout)
    assert shown["summary"]["picked"]["run_id"] in out
    missing = mlcycle("tune", "show", "nosuch", cwd=root)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no study 'nosuch' (studies: plain)"
