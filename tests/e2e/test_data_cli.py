"""``mlcycle data`` as a new user runs it on their own CSV files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from mlcycle import Project
from tests.e2e.test_cli import mlcycle as _mlcycle


def mlcycle(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command with a terminal wide enough that no line of its output wraps."""
    return _mlcycle(*args, cwd=cwd, env={"COLUMNS": "1000"})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    Project.init(tmp_path / "proj", name="proj").close()  # the README tour runs `mlcycle init`
    return tmp_path / "proj"


def fails(project: Path, *args: str) -> str:
    done = mlcycle(*args, cwd=project)
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_csv_saved_with_its_index_loses_it_with_a_note(project: Path) -> None:
    load_breast_cancer(as_frame=True).frame.to_csv(project / "cancer.csv")  # index kept
    done = mlcycle("data", "add", "cancer.csv", "--target", "target", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "note: dropped column '': it has no name and holds integers 0..568" in done.stdout
    shown = json.loads(mlcycle("data", "show", "cancer", "--json", cwd=project).stdout)
    names = [c["name"] for c in shown["schema"]["columns"]]
    assert "" not in names and len(names) == 31


def test_which_version_a_target_belongs_to_is_said(project: Path) -> None:
    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = frame.pop("target").map({0: "a", 1: "b", 2: "c"})
    frame.to_csv(project / "wine.csv", index=False)

    first = mlcycle("data", "add", "wine.csv", "--target", "cultivar", cwd=project)
    assert first.stdout.startswith(
        "added wine@1 (178 rows, target 'cultivar' (multiclass)), now the latest of 'wine'\n"
    )
    second = mlcycle("data", "add", "wine.csv", "--target", "alcohol", cwd=project)
    assert second.stdout.startswith(
        "added wine@2 (178 rows, target 'alcohol' (regression)), now the latest of 'wine'\n"
    )
    assert "warning: wine@2 predicts target 'alcohol' (regression) where wine@1" in second.stdout
    again = mlcycle("data", "add", "wine.csv", "--target", "cultivar", cwd=project)
    assert again.stdout.startswith(
        "unchanged: the same data as wine@1 (178 rows, target 'cultivar' (multiclass)), which "
        "is not the latest: wine@2 is (target 'alcohol' (regression))\n"
        "to train on it: mlcycle train --data wine@1\n"
    )
    as_json = json.loads(
        mlcycle("data", "add", "wine.csv", "--target", "cultivar", "--json", cwd=project).stdout
    )
    assert {k: as_json[k] for k in ("ref", "created", "latest", "is_latest", "target", "task")} == {
        "ref": "wine@1",
        "created": False,
        "latest": 2,
        "is_latest": False,
        "target": "cultivar",
        "task": "multiclass",
    }

    listed = json.loads(mlcycle("data", "list", "--json", cwd=project).stdout)
    assert [{k: d[k] for k in ("name", "latest", "rows", "target", "task")} for d in listed] == [
        {"name": "wine", "latest": 2, "rows": 178, "target": "alcohol", "task": "regression"}
    ]
    table = mlcycle("data", "list", cwd=project).stdout
    assert "alcohol" in table and "regression" in table and "178" in table


def test_train_says_which_version_and_task_it_trains(project: Path) -> None:
    assert mlcycle("data", "add", "sklearn:iris", cwd=project).returncode == 0
    done = mlcycle("train", "--data", "iris", "--set", "max_epochs=1", "--quiet", cwd=project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "training on iris@1 (target 'target' (multiclass); the latest)"
    )


def _codes_csv(project: Path) -> None:
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "ref": [f"R{i:04d}" for i in range(300)],
            "zip_code": rng.choice([2139, 10001, 94110], 300),
            "when": [f"{1 + i % 28:02d}/{1 + i % 12:02d}/2024" for i in range(300)],
            "y": rng.choice(["no", "yes"], 300),
        }
    ).to_csv(project / "loans.csv", index=False)


def test_roles_and_types_from_the_command_line(project: Path) -> None:
    _codes_csv(project)
    plain = mlcycle("data", "add", "loans.csv", cwd=project)
    assert "warning: column 'ref' holds a different value in each of its 300 rows" in plain.stdout
    assert "set roles: {ref: id} (--role ref=id)" in plain.stdout
    assert "set types: {zip_code: categorical} (--type zip_code=categorical)" in plain.stdout

    done = mlcycle(
        "data", "add", "loans.csv", "--role", "ref=id", "--type", "zip_code=categorical",
        "--json", cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    added = json.loads(done.stdout)
    columns = {c["name"]: (c["role"], c["type"]) for c in added["schema"]["columns"]}
    assert columns == {
        "ref": ("id", "categorical"),
        "zip_code": ("feature", "categorical"),
        "when": ("timestamp", "numeric"),
        "y": ("target", "categorical"),
    }
    assert added["warnings"] == []


def test_bad_roles_types_and_tasks_are_one_line_naming_what_is_allowed(project: Path) -> None:
    _codes_csv(project)
    for args, message in [
        (
            ("--role", "ref=boss"),
            "error: --role 'ref=boss': 'boss' is not one of feature, target, sensitive, id, "
            "timestamp, ignore",
        ),
        (
            ("--role", "ref"),
            "error: --role 'ref': expected COLUMN=VALUE, e.g. --role customer_id=id",
        ),
        (
            ("--type", "zip=text"),
            "error: --type 'zip=text': 'text' is not one of numeric, categorical, boolean, image",
        ),
        (
            ("--role", "zip=id"),
            "error: roles: column 'zip' is not in the data; available columns: ref, zip_code, "
            "when, y",
        ),
        (
            ("--task", "ranking"),
            "error: --task 'ranking': expected one of binary, multiclass, regression",
        ),
    ]:
        assert fails(project, "data", "add", "loans.csv", *args).startswith(message)


def test_a_target_with_one_row_per_class_is_refused_with_the_flags_to_use(project: Path) -> None:
    _codes_csv(project)
    assert fails(project, "data", "add", "loans.csv", "--target", "ref") == (
        "error: target 'ref' has 300 classes in 300 rows; expected at most 1000 and at most "
        "half the rows (150): if it identifies rows, set roles: {ref: id} (--role ref=id) and "
        "choose another target; otherwise group its values into fewer classes"
    )
