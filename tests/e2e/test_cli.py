"""The real ``mlcycle`` command in temporary projects."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle import Project

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))


def mlcycle(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLCYCLE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "160", **(env or {})},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    Project.init(tmp_path / "proj", name="proj").close()  # the README tour runs `mlcycle init`
    return tmp_path / "proj"


def test_version() -> None:
    done = subprocess.run([MLCYCLE, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("mlcycle 0.")


def test_data_add_twice_gives_one_version(project: Path) -> None:
    first = mlcycle("data", "add", "sklearn:breast_cancer", "--json", cwd=project)
    assert first.returncode == 0, first.stderr
    added = json.loads(first.stdout)
    assert (added["ref"], added["created"], added["rows"]) == ("breast_cancer@1", True, 569)
    assert added["profile"]["features"] == 30
    assert added["profile"]["class_balance"] == {"malignant": 212, "benign": 357}

    second = json.loads(
        mlcycle("data", "add", "sklearn:breast_cancer", "--json", cwd=project).stdout
    )
    assert (second["ref"], second["created"]) == ("breast_cancer@1", False)

    listed = json.loads(mlcycle("data", "list", "--json", cwd=project).stdout)
    assert [(d["name"], d["versions"], d["latest"]) for d in listed] == [("breast_cancer", 1, 1)]

    shown = mlcycle("data", "show", "breast_cancer@1", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "569 rows, 30 features" in shown.stdout
    assert "malignant 212" in shown.stdout and "benign 357" in shown.stdout
    assert "mean_radius" in shown.stdout


def test_commands_find_the_project_upwards_or_by_flag(project: Path, tmp_path: Path) -> None:
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    assert mlcycle("data", "add", "sklearn:iris", cwd=sub).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = mlcycle("--project", str(project), "data", "list", "--json", cwd=elsewhere)
    assert [d["name"] for d in json.loads(listed.stdout)] == ["iris"]
    missing = mlcycle("data", "list", cwd=elsewhere)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no mlcycle.yaml in")
    assert " ".join(missing.stderr.split()).endswith(
        "or any folder above it: run 'mlcycle init' or pass --project DIR"
    )


def test_a_csv_file_is_named_after_its_stem(project: Path) -> None:
    csv = project / "loans-2026.csv"
    rows = ["income,age,defaulted"] + [
        f"{1000 + i * 37},{20 + i % 40},{i % 3 == 0}" for i in range(60)
    ]
    csv.write_text("\n".join(rows) + "\n")
    done = mlcycle("data", "add", "loans-2026.csv", "--target", "defaulted", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    added = json.loads(done.stdout)
    assert added["ref"] == "loans-2026@1"
    assert added["profile"]["task"] == "binary"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("data", "add", "nothere.csv"),
            "error: data source 'nothere.csv': no such file or folder",
        ),
        (("data", "add", "sklearn:nope"), "error: "),
        (("data", "show", "ghost"), "error: dataset 'ghost' does not exist"),
        (("runs", "show", "abcdef12"), "error: run 'abcdef12' does not exist"),
    ],
)
def test_bad_input_is_one_red_line_and_exit_code_1(
    project: Path, args: tuple[str, ...], message: str
) -> None:
    done = mlcycle(*args, cwd=project)
    assert done.returncode == 1
    assert done.stderr.startswith(message)
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_invalid_spec_is_one_line_naming_the_field(project: Path) -> None:
    (project / "mlcycle.yaml").write_text("data:\n  imbalance_ratio: -1\n")
    done = mlcycle("data", "list", cwd=project)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: data.imbalance_ratio: -1 is not > 1"


def test_runs_list_and_show(project: Path) -> None:
    code = (
        "import mlcycle\n"
        "with mlcycle.Project.open('.') as p:\n"
        "    with p.runs.start('manual', params={'lr': 0.1}) as r:\n"
        "        r.log_metrics(0, {'loss': 0.5})\n"
        "    print(r.id)\n"
    )
    run_id = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    listed = json.loads(mlcycle("runs", "list", "--json", cwd=project).stdout)
    assert [(r["id"], r["status"], r["params"]) for r in listed] == [
        (run_id, "finished", {"lr": 0.1})
    ]
    shown = json.loads(mlcycle("runs", "show", run_id[:8], "--json", cwd=project).stdout)
    assert shown["metrics"] == {"loss": [{"step": 0, "value": 0.5}]}
    table = mlcycle("runs", "list", cwd=project)
    assert run_id[:8] in table.stdout and "finished" in table.stdout


def test_demo_runs_the_whole_loop_and_writes_the_story(tmp_path: Path) -> None:
    done = mlcycle("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout.replace("\n", " ")
    assert "loans@1; adding the same rows again gives loans@1 (the same version)" in text
    assert "3000 rows, 8 features" in text
    assert "95% CI" in text and "accuracy" in text
    report = next((tmp_path / "demo" / ".mlcycle" / "reports").glob("*.html"))
    assert report.is_file()
    assert "loans@1 @champion: ONNX Runtime matches PyTorch" in text
    assert (tmp_path / "demo" / "edge" / "loans" / "predict.py").is_file()
    assert "single-row latency" in text
    assert "loop triggered: dataset drift" in text
    # the loop retuned: a short study whose best trial is the challenger
    assert "loop retuned: study loop-loans-c0-tune, 4 trials" in text
    assert (
        "(best trial of study loop-loans-c0-tune) on loans-retrain@1 registered as loans@2" in text
    )
    assert (tmp_path / "demo" / ".mlcycle" / "reports" / "study-loop-loans-c0-tune.html").is_file()
    assert "gate passed" in text and "answers 50% of traffic" in text
    assert "promoted: loans@2 is @champion (was 1)" in text
    assert "(v2 100%)" in text  # the server swapped to the new champion
    assert "5000 rows scored (0 rejected)" in text
    assert (tmp_path / "demo" / "scored.parquet").is_file()
    old = re.search(r"loans@1: accuracy (0\.\d+) on 2,000 new", text)
    new = re.search(r"loans@2: accuracy (0\.\d+) on 2,000 new", text)
    assert old and new and float(new.group(1)) > float(old.group(1)) + 0.3, text
    assert (tmp_path / "demo" / "monitor.html").is_file()
    story = (tmp_path / "demo" / "story.html").read_text()
    assert "Decisions and their reasons" in story and "promoted" in story
    assert "study loop-loans-c0-tune, 4 trials" in story
    assert "demo finished" in text
    assert f"browse it: mlcycle --project {tmp_path / 'demo'} ui" in text
