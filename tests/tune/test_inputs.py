"""Bad input to a study is one line naming the field, the value and what is allowed.

Every refusal comes before the first trial: no study run is left behind, so
a typo costs seconds, not a study's hours.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import pytest

from mlcycle import Project
from mlcycle.errors import NotFoundError, SpecError
from mlcycle.tune import STUDY_EXPERIMENT, parse_pick, study_run, tune
from tests.tune._studies import QUICK, mlcycle


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with Project.init(tmp_path_factory.mktemp("inputs") / "proj", name="proj") as opened:
        yield opened


def _space(**fields: Any) -> dict[str, Any]:
    return {**QUICK, "tune.space": fields}


# (keyword arguments of tune(), words the one-line message must hold)
BAD: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown field": (
        {"overrides": _space(**{"model.nosuch": {"low": 1, "high": 2}})},
        ["tune.space.model.nosuch", "names no field of train", "searchable:", "model.dropout"],
    ),
    "empty choices": (
        {"overrides": _space(lr={"choices": []})},
        ["tune.space.lr", "choices is empty", "at least one value"],
    ),
    "low above high": (
        {"overrides": _space(lr={"low": 0.1, "high": 0.01})},
        ["tune.space.lr", "low 0.1 > high 0.01", "low must be <= high"],
    ),
    "log range from 0": (
        {"overrides": _space(lr={"low": 0, "high": 0.1, "log": True})},
        ["tune.space.lr", "log range needs low > 0", "got low 0"],
    ),
    "range over text": (
        {"overrides": _space(optimizer={"low": 0, "high": 1})},
        ["tune.space.optimizer", "cannot search a str field", "'adamw'", "choices"],
    ),
    "range over a list": (
        {"overrides": _space(**{"model.hidden": {"low": 8, "high": 64}})},
        ["tune.space.model.hidden", "cannot search a list field", "[128, 64]", "choices"],
    ),
    "value the field refuses": (
        {"overrides": _space(**{"model.dropout": {"low": 0.0, "high": 1.0}})},
        ["tune.space.model.dropout", "1.0", "refused", "< 1"],
    ),
    "a choice the field refuses": (
        {"overrides": _space(optimizer={"choices": ["adam", "adamm"]})},
        ["tune.space.optimizer", "'adamm'", "refused", "sgd"],
    ),
    "fractional bounds of an integer": (
        {"overrides": _space(batch_size={"low": 16.5, "high": 64})},
        ["tune.space.batch_size", "integer", "16.5"],
    ),
    "fractional step of an integer": (
        {"overrides": _space(batch_size={"low": 16, "high": 64, "step": 0.5})},
        ["tune.space.batch_size", "integer", "step 0.5"],
    ),
    "step that does not divide a range": (
        {"overrides": _space(lr={"low": 0.001, "high": 0.01, "step": 0.004})},
        ["tune.space.lr", "step 0.004", "[0.001, 0.01]", "high 0.009"],
    ),
    "step that does not divide an integer range": (
        {"overrides": _space(batch_size={"low": 16, "high": 64, "step": 20})},
        ["tune.space.batch_size", "step 20", "[16, 64]", "high 56"],
    ),
    "one field under two names": (
        {"overrides": _space(lr={"low": 0.001, "high": 0.01}, **{"train.lr": {"choices": [0.1]}})},
        ["tune.space.train.lr", "sets train.lr", "tune.space.lr", "once"],
    ),
    "hidden layers searched twice": (
        {
            "overrides": _space(
                **{"model.hidden": {"choices": [[8]]}, "model.depth": {"low": 1, "high": 2}}
            )
        },
        ["tune.space.model.depth", "sets train.model.hidden", "tune.space.model.hidden", "once"],
    ),
    "unknown objective": (
        {"objective": "acuracy", "overrides": QUICK},
        ["tune.objective", "'acuracy'", "accuracy, balanced_accuracy"],
    ),
    "objective of another task": (
        {"objective": "rmse", "overrides": QUICK},
        ["tune.objective", "'rmse'", "not a classification metric", "accuracy"],
    ),
    "latency as the first objective": (
        {"objective": "latency_ms,accuracy", "overrides": QUICK},
        ["tune.objective", "'latency_ms'", "first objective must be a metric"],
    ),
    "grid over a continuous range": (
        {"sampler": "grid", "overrides": _space(lr={"low": 0.001, "high": 0.1})},
        ["tune.space.lr", "grid sampler", "choices or a step", "[0.001, 0.1]"],
    ),
    "cmaes with two objectives": (
        {"sampler": "cmaes", "objective": "accuracy,latency_ms", "overrides": QUICK},
        ["tune.sampler", "'cmaes'", "one objective", "nsga2"],
    ),
    "pruner with two objectives": (
        {"pruner": "median", "objective": "accuracy,parameters", "overrides": QUICK},
        ["tune.pruner", "'median'", "several objectives", "none"],
    ),
    "unknown sampler": (
        {"sampler": "bayes", "overrides": QUICK},
        ["tune.sampler", "'bayes'", "'tpe'", "'nsga2'"],
    ),
    "pick by a name that is no objective": (
        {"objective": "accuracy,latency_ms", "pick": "fastest", "overrides": QUICK},
        ["--pick 'fastest'", "not an objective of the study", "accuracy, latency_ms"],
    ),
    "pick with a condition it cannot read": (
        {"objective": "accuracy,latency_ms", "pick": "latency_ms where accuracy=0.9"},
        ["--pick", "'accuracy=0.9'", "NAME>=VALUE"],
    ),
    "pick with a condition on no objective": (
        {"objective": "accuracy,latency_ms", "pick": "latency_ms where f1_macro>=0.9"},
        ["--pick", "'f1_macro'", "not an objective", "accuracy, latency_ms"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_in_one_line_before_any_trial(project: Project, case: str) -> None:
    kwargs, words = BAD[case]
    studies = len(project.runs.list(experiment=STUDY_EXPERIMENT, limit=1000))
    with pytest.raises(SpecError) as caught:
        tune(project, data="sklearn:iris", n_trials=2, **kwargs)
    message = str(caught.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert len(project.runs.list(experiment=STUDY_EXPERIMENT, limit=1000)) == studies


def test_every_refused_value_of_a_space_is_on_one_line(project: Project) -> None:
    # Both hidden layers refuse a width of 0: the spec's two complaints, one line.
    with pytest.raises(SpecError) as caught:
        tune(project, data="sklearn:iris", overrides=_space(**{"model.width": {"choices": [0]}}))
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith("tune.space.model.width: the value 0 is refused")
    assert "hidden[0]" in message and "hidden[1]" in message


def test_an_objective_that_does_not_fit_regression(project: Project) -> None:
    with pytest.raises(SpecError, match=r"'accuracy' is not a regression metric.* rmse"):
        tune(project, data="sklearn:diabetes", objective="accuracy", overrides=QUICK)


def test_a_pick_reads_conditions_on_every_metric_name() -> None:
    names = ["f1_macro", "latency_ms", "parameters"]
    assert parse_pick("latency_ms where f1_macro >= 0.9 and parameters<5e4", names) == (
        "latency_ms",
        [("f1_macro", ">=", 0.9), ("parameters", "<", 50000.0)],
    )
    assert parse_pick("f1_macro", names) == ("f1_macro", [])
    with pytest.raises(SpecError, match=r"'1\.2\.3' is not a number"):
        parse_pick("latency_ms where f1_macro>=1.2.3", names)


@pytest.mark.slow  # two short studies: 5-10 s
def test_a_pick_no_point_meets_is_an_error_after_a_finished_study(project: Project) -> None:
    with pytest.raises(NotFoundError) as caught:
        tune(
            project,
            data="sklearn:iris",
            name="unmet",
            n_trials=2,
            seed=0,
            objective="accuracy,parameters",
            pick="parameters where accuracy>1",
            overrides=QUICK,
        )
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("--pick 'parameters where accuracy>1': no point of the front")
    assert "(front: accuracy " in message
    # The study itself finished: its run, its report; picking again trains nothing more.
    record = study_run(project, "unmet")
    assert record.status == "finished"
    assert Path(record.summary["report"]).is_file()
    again = tune(
        project,
        data="sklearn:iris",
        name="unmet",
        n_trials=2,
        seed=0,
        objective="accuracy,parameters",
        pick="parameters where accuracy>0",
        overrides=QUICK,
    )
    assert again.trials["complete"] + again.trials["pruned"] == 2
    assert again.picked is not None and "test" in again.picked


class _OneSecond(datetime):
    """A clock stopped in one second: two studies started within it."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _OneSecond:
        return cls(2026, 12, 3, 16, 11, 55, tzinfo=tz)


@pytest.mark.slow  # two one-trial studies: 4-10 s
def test_two_unnamed_studies_in_the_same_second_are_two_studies(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mlcycle.tune._study.datetime", _OneSecond)
    first = tune(project, data="sklearn:iris", n_trials=1, seed=0, overrides=QUICK)
    second = tune(project, data="sklearn:iris", n_trials=1, seed=1, overrides=QUICK)
    assert first.name == "mlp-iris-20261203-161155"
    assert second.name == "mlp-iris-20261203-161155-2" and first.run_id != second.run_id
    assert second.trials["complete"] + second.trials["pruned"] == 1


@pytest.mark.slow  # the real command, five times: 15-25 s
def test_the_cli_says_what_is_wrong_in_one_error_line(tmp_path: Path) -> None:
    assert mlcycle("init", "proj", cwd=tmp_path).returncode == 0
    root = tmp_path / "proj"
    spec = root / "mlcycle.yaml"
    plain = spec.read_text()
    spec.write_text(plain + "\ntune:\n  space:\n    model.nosuch: {low: 1, high: 2}\n")
    cases = [
        ([], "tune.space.model.nosuch: names no field of train; searchable:"),
        (["--set", "tune.space={lr: {choices: []}}"], "tune.space.lr: choices is empty"),
        (["--objective", "rmse"], "'rmse' is not a classification metric"),
        (
            ["--sampler", "cmaes", "--objective", "accuracy,latency_ms"],
            "tune.sampler: 'cmaes' optimises one objective",
        ),
        (
            ["--objective", "accuracy,latency_ms", "--pick", "latency_ms if accuracy>=0.9"],
            "--pick 'latency_ms if accuracy>=0.9': 'latency_ms if accuracy>=0.9' is not an "
            "objective of the study (accuracy, latency_ms)",
        ),
    ]
    for i, (args, expected) in enumerate(cases):
        if i == 1:
            spec.write_text(plain)
        done = mlcycle("tune", "--data", "sklearn:iris", "--trials", "2", *args, cwd=root)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert expected in lines[0], (expected, lines[0])
    listed = mlcycle("tune", "list", "--json", cwd=root)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
