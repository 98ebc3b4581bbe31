"""Training reports its progress through a callback; only the CLI draws it."""

from __future__ import annotations

import ast
import io
import sys
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.train import EpochProgress, train


def test_the_callback_gets_one_event_per_epoch_with_the_recorded_metrics(
    project: Project,
) -> None:
    events: list[EpochProgress] = []
    overrides = {"max_epochs": 5, "batch_size": 16, "early_stopping": {"patience": 100}}
    outcome = train(project, data="sklearn:iris", overrides=overrides, on_progress=events.append)

    assert [e.epoch for e in events] == [1, 2, 3, 4, 5] == list(range(1, 6))
    assert all(
        e.epochs == 5 and e.metric == outcome.summary["early_stopping_metric"] for e in events
    )
    recorded: dict[int, dict[str, float]] = {}
    for point in project.runs.metrics(outcome.run_id):
        recorded.setdefault(point.step, {})[point.key] = point.value
    for event in events:
        assert event.metrics == pytest.approx(recorded[event.epoch - 1])
        assert event.value == event.metrics[f"val_{event.metric}"]
    assert events[0].improved  # the first epoch always improves on nothing
    assert events[-1].eta_s == 0.0 and all(e.eta_s is not None and e.eta_s >= 0 for e in events)
    assert [e.elapsed_s for e in events] == sorted(e.elapsed_s for e in events)


def test_without_a_callback_the_api_prints_a_line_per_epoch_unless_quiet(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    train(project, data="sklearn:iris", overrides={"max_epochs": 2}, quiet=False)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]], lines
    assert "loss " in lines[0] and "val " in lines[0]
    train(project, data="sklearn:iris", overrides={"max_epochs": 2}, quiet=True)
    assert capsys.readouterr().err == ""


def test_by_default_the_api_shows_progress_to_someone_watching(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A terminal or a notebook sees a line per epoch; a log file or a pipe sees nothing."""
    overrides = {"max_epochs": 2}
    train(project, data="sklearn:iris", overrides=overrides)  # stderr is captured: no tty
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train(project, data="sklearn:iris", overrides=overrides)
    assert [line.split()[:2] for line in terminal.getvalue().splitlines()] == [
        ["epoch", "1/2"],
        ["epoch", "2/2"],
    ]


def test_the_train_stage_imports_no_drawing_library() -> None:
    # scikit-learn itself imports rich, so sys.modules cannot tell; mlcycle's own imports
    # can (import-linter holds every stage to it: "Only the CLI draws" in pyproject.toml).
    import mlcycle.train

    package = Path(mlcycle.train.__file__).parent
    drawing = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            drawing += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "rich"]
    assert drawing == []
