"""``mlcycle runs list`` filters and sorts, ``runs tag``, ``runs delete``, ``train --tag``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlcycle.cli  # noqa: F401  (registers the commands)
from mlcycle import Project
from mlcycle.cli._app import main, out


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as they need (the captured terminal would truncate their columns)."""
    monkeypatch.setattr(out, "width", 200)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A project with three finished runs of known results (no training needed)."""
    with Project.init(tmp_path / "proj", name="proj") as p:
        p.datasets.add("sklearn:iris")
        results = [
            ("low", "exp-a", {"team": "fraud"}, 0.80, [0.9, 0.5]),
            ("high", "exp-a", {"team": "fraud", "stage": "prod"}, 0.95, [0.8, 0.3]),
            ("mid", "exp-b", {"team": "risk"}, 0.90, [0.7, 0.1]),
        ]
        for name, experiment, tags, accuracy, losses in results:
            with p.runs.start(name, tags=tags, experiment=experiment, dataset="iris@1") as run:
                for step, loss in enumerate(losses):
                    run.log_metrics(step, {"val_loss": loss})
                run.update_summary({"test": {"accuracy": accuracy, "roc_auc": accuracy + 0.01}})
        with p.runs.start("failed-one", experiment="exp-b") as run:
            run.finish("failed")
    yield tmp_path / "proj"


def cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def names(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    code, said, err = cli(root, capsys, "runs", "list", "--json", *args)
    assert code == 0, err
    return [r["name"] for r in json.loads(said)]


def test_list_filters_in_the_store(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert names(root, capsys) == ["failed-one", "mid", "high", "low"]
    assert names(root, capsys, "--experiment", "exp-a") == ["high", "low"]
    assert names(root, capsys, "--status", "failed") == ["failed-one"]
    assert names(root, capsys, "--tag", "team=fraud") == ["high", "low"]
    assert names(root, capsys, "--tag", "team=fraud", "--tag", "stage=prod") == ["high"]
    assert names(root, capsys, "--dataset", "iris") == ["mid", "high", "low"]
    assert names(root, capsys, "--dataset", "iris@1", "--experiment", "exp-b") == ["mid"]


def test_where_and_sort_on_results(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert names(root, capsys, "--where", "test.accuracy>0.85") == ["mid", "high"]
    assert names(root, capsys, "--where", "test.accuracy >= 0.9", "--where", "val_loss<0.2") == [
        "mid"
    ]
    assert names(root, capsys, "--where", "test.accuracy==0.8") == ["low"]
    assert names(root, capsys, "--where", "test.accuracy!=0.8") == ["mid", "high"]
    assert names(root, capsys, "--sort", "test.accuracy") == ["high", "mid", "low", "failed-one"]
    assert names(root, capsys, "--sort", "val_loss", "--asc", "--limit", "2") == ["mid", "high"]
    code, table, _ = cli(root, capsys, "runs", "list", "--sort", "test.accuracy")
    assert code == 0
    header = table.splitlines()[1]
    assert "test.accuracy" in header and "test.roc_auc" in header
    high = next(line for line in table.splitlines() if "high" in line)
    assert "0.95" in high and "0.96" in high


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--where", "test.acuracy>0.9"),
            "error: --where 'test.acuracy>0.9': unknown metric 'test.acuracy'; these runs have "
            "test.accuracy, test.roc_auc, val_loss",
        ),
        (
            ("--where", "test.accuracy>>0.9"),
            "error: --where 'test.accuracy>>0.9': '>0.9' is not a number",
        ),
        (("--where", "accuracy high"), "error: --where 'accuracy high': expected METRIC OP NUMBER"),
        (("--sort", "loss"), "error: --sort 'loss': unknown metric 'loss'"),
        (("--tag", "team"), "error: --tag 'team': expected KEY=VALUE, e.g. --tag team=fraud"),
        (("--tag", "=x"), "error: --tag '=x': expected KEY=VALUE"),
    ],
)
def test_bad_filters_are_one_line_errors(
    root: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, said, err = cli(root, capsys, "runs", "list", *args)
    assert code == 1 and said == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(message), err


def test_tag_and_delete(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, listed, _ = cli(root, capsys, "runs", "list", "-q", "--experiment", "exp-b")
    failed, mid = listed.split()
    code, said, err = cli(root, capsys, "runs", "tag", mid[:8], "stage=prod", "owner=ana")
    assert code == 0, err
    assert "stage=prod" in said and "owner=ana" in said
    assert names(root, capsys, "--tag", "stage=prod") == ["mid", "high"]
    code, _, err = cli(root, capsys, "runs", "tag", mid[:8], "stage")
    assert code == 1 and err.startswith("error: tag 'stage': expected KEY=VALUE")

    code, said, err = cli(root, capsys, "runs", "delete", failed, "--yes", "--json")
    assert code == 0, err
    assert json.loads(said)["run_id"] == failed
    assert names(root, capsys) == ["mid", "high", "low"]
    code, _, err = cli(root, capsys, "runs", "delete", failed, "--yes")
    assert code == 1 and err.strip() == f"error: run {failed!r} does not exist"


def test_train_records_experiment_name_and_tags(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said, err = cli(
        root,
        capsys,
        "train",
        "--data", "iris@1",
        "--set", "max_epochs=2",
        "--experiment", "sweep",
        "--name", "tiny",
        "--tag", "team=fraud",
        "--tag", "note=a=b",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    run_id = json.loads(said)["run_id"]
    listed = json.loads(cli(root, capsys, "runs", "list", "--json", "--experiment", "sweep")[1])
    assert [(r["id"], r["name"]) for r in listed] == [(run_id, "tiny")]
    assert listed[0]["tags"] == {
        "model": "mlp",
        "task": "multiclass",
        "team": "fraud",
        "note": "a=b",
    }
    assert names(root, capsys, "--tag", "team=fraud", "--where", "test.accuracy>0") == [
        "tiny",
        "high",
        "low",
    ]
    code, _, err = cli(root, capsys, "train", "--data", "iris@1", "--experiment", "a b")
    assert code == 1 and err.startswith("error: experiment name 'a b'"), err
