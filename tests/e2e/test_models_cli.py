"""``mlcycle register`` / ``models`` / ``export`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.train import train
from tests.e2e.test_cli import mlcycle


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Trained in this process: the runs are the subject's input, not its subject
    # (training from the command line has tests of its own, in test_train_cli).
    root = tmp_path_factory.mktemp("models") / "proj"
    with Project.init(root, name="proj") as made:
        runs = [
            train(
                made, data="sklearn:iris", overrides={"max_epochs": 25, "lr": lr}, quiet=True
            ).run_id
            for lr in (0.003, 0.01)
        ]
    (root / "runs.json").write_text(json.dumps(runs))
    return root


def _runs(project: Path) -> list[str]:
    return list(json.loads((project / "runs.json").read_text()))


def test_register_alias_history_rollback_diff_delete(project: Path) -> None:
    first, second = _runs(project)
    done = mlcycle(
        "register", first, "--name", "iris-clf", "--alias", "champion", "--json", cwd=project
    )
    assert done.returncode == 0, done.stderr
    v1 = json.loads(done.stdout)
    assert (v1["ref"], v1["aliases"]) == ("iris-clf@1", ["champion"])
    assert v1["metrics"]["parity"]["labels_identical"] is True

    done = mlcycle("register", second[:8], "--name", "iris-clf", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "registered iris-clf@2" in done.stdout and "parity" in done.stdout

    moved = mlcycle(
        "models", "alias", "iris-clf", "2", "champion", "--reason", "higher lr", cwd=project
    )
    assert moved.returncode == 0 and "iris-clf@champion → 2 (was 1)" in moved.stdout

    listed = json.loads(mlcycle("models", "list", "--json", cwd=project).stdout)
    assert listed == [{"name": "iris-clf", "versions": 2, "latest": 2, "aliases": {"champion": 2}}]
    shown = json.loads(mlcycle("models", "show", "iris-clf@champion", "--json", cwd=project).stdout)
    assert shown["version"] == 2 and shown["run_id"] == second

    history = json.loads(mlcycle("models", "history", "iris-clf", "--json", cwd=project).stdout)
    moves = [h for h in history if h["action"] == "alias.moved"]
    assert [(m["details"]["from"], m["details"]["to"], m["reason"]) for m in moves] == [
        (None, 1, "registered"),
        (1, 2, "higher lr"),
    ]

    refused = mlcycle("models", "delete", "iris-clf", "2", cwd=project)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: version 2 of model 'iris-clf' is @champion")

    back = mlcycle(
        "models", "rollback", "iris-clf@champion", "--reason", "canary failed", cwd=project
    )
    assert back.returncode == 0, back.stderr
    assert "iris-clf@champion → 1 (rolled back from 2)" in back.stdout
    table = mlcycle("models", "history", "iris-clf", cwd=project).stdout
    assert "(rollback)" in table and "canary failed" in table

    diff = json.loads(mlcycle("models", "diff", "iris-clf", "1", "2", "--json", cwd=project).stdout)
    assert diff["rows"]["train.lr"] == [0.003, 0.01]
    assert diff["rows"]["lineage.run"] == [first, second]

    assert (
        mlcycle(
            "models", "delete", "iris-clf", "2", "--reason", "superseded", cwd=project
        ).returncode
        == 0
    )
    assert json.loads(mlcycle("models", "list", "--json", cwd=project).stdout)[0]["versions"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("models", "show", "ghost"), "error: model 'ghost' is not registered"),
        (("models", "rollback", "iris-clf"), "error: rollback needs NAME@ALIAS"),
        (("register", "feedbeef", "--name", "x"), "error: run 'feedbeef' does not exist"),
        # names and aliases are checked first, before the run is even looked up
        (("register", "feedbeef", "--name", "nl\n"), "error: model name 'nl\\n': expected"),
        (
            ("register", "feedbeef", "--name", "x", "--alias", "latest"),
            "error: alias 'latest': expected a letter",
        ),
        (("serve", "..@1"), "error: model name '..': expected letters, digits, '_', '.' or '-'"),
    ],
)
def test_registry_errors_are_one_line(project: Path, args: tuple[str, ...], message: str) -> None:
    done = mlcycle(*args, cwd=project)
    assert done.returncode == 1
    assert done.stderr.startswith(message), done.stderr


def test_export_writes_an_edge_bundle_that_predicts_like_the_registry(
    project: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    first, _ = _runs(project)
    assert (
        mlcycle("register", first, "--name", "edge-iris", "--alias", "prod", cwd=project).returncode
        == 0
    )
    dest = tmp_path / "bundle"
    done = mlcycle(
        "export", "edge-iris@prod", "--edge", str(dest), "--ort-format", "--json", cwd=project
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["size_bytes"] > 10_000 and info["latency_ms"] > 0
    assert {
        "model.onnx",
        "model.ort",
        "signature.json",
        "manifest.json",
        "predict.py",
        "README.md",
    } <= {p.name for p in dest.iterdir()}
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n"
        "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
    )
    edge = subprocess.run(
        [sys.executable, str(dest / "predict.py"), str(rows)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert edge.returncode == 0, edge.stderr
    labels = [json.loads(line)["label"] for line in edge.stdout.splitlines()]
    code = (
        "import mlcycle, json\n"
        "m = mlcycle.load('edge-iris@prod')\n"
        "print(json.dumps(list(m.predict([\n"
        "  {'sepal_length_cm': 5.1, 'sepal_width_cm': 3.5, 'petal_length_cm': 1.4, 'petal_width_cm': 0.2},\n"
        "  {'sepal_length_cm': 6.7, 'sepal_width_cm': 3.0, 'petal_length_cm': 5.2, 'petal_width_cm': 2.3},\n"
        "]).labels)))\n"
    )
    registry = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert registry.returncode == 0, registry.stderr
    assert labels == json.loads(registry.stdout)
    again = mlcycle("export", "edge-iris@prod", "--edge", str(dest), cwd=project)
    assert again.returncode == 1 and "error:" in again.stderr
