"""The spec: validation messages name the field, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlcycle.errors import SpecError
from mlcycle.spec import Spec, load_spec, parse_spec


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data": {"imbalance_ratio": -1}}, "data.imbalance_ratio: -1 is not > 1"),
        (
            {"data": {"datasets": {"cancer": {"split": {"test": 1.5}}}}},
            "data.datasets.cancer.split.test: 1.5 is not < 1",
        ),
        (
            {"data": {"datasets": {"cancer": {"split": {"seed": -3}}}}},
            "data.datasets.cancer.split.seed: -3 is not >= 0",
        ),
        (
            {"data": {"datasets": {"c": {"task": "clustering"}}}},
            "data.datasets.c.task: 'clustering' is not one of 'binary', 'multiclass' or 'regression'",
        ),
        (
            {"data": {"datasets": {"c": {"roles": {"age": "label"}}}}},
            "data.datasets.c.roles.age: 'label' is not one of 'feature', 'target', 'sensitive',"
            " 'id', 'timestamp' or 'ignore'",
        ),
        (
            {"data": {"datasets": {"c": {"split": {"validation": 0.5, "test": 0.5}}}}},
            "data.datasets.c.split: validation + test is 1: expected < 1",
        ),
        (
            {"store": {"url": "mysql://db/x"}},
            "store.url: 'mysql://db/x': expected a URL of a registered metadata backend"
            " (postgresql://, sqlite://)",
        ),
        (
            {"stroe": {}},
            "stroe: unknown field; allowed: artifacts, data, evaluate, loop, monitor, project,"
            " store, train",
        ),
        (
            {"monitor": {"columns": {"age": {"test": "ttest"}}}},
            "monitor.columns.age.test: 'ttest': unknown drift test; registered: chi2, chi2_gof,"
            " jensenshannon, ks, psi, wasserstein, z",
        ),
        (
            {"train": {"model": {"kind": "rnn"}}},
            "train.model.kind: 'rnn': unknown model kind; registered: cnn, custom, gbm, linear, mlp",
        ),
        (
            {"train": {"executor": "dask"}},
            "train.executor: 'dask': unknown executor; registered: local, ray",
        ),
        (
            {"artifacts": {"backend": "azure"}},
            "artifacts.backend: 'azure': unknown artifact store; registered: fsspec",
        ),
        (
            {"loop": {"triggers": {"drfit": True}}},
            "loop.triggers: unknown trigger 'drfit'; registered: attribution_drift, drift, interval, keep_improving,"
            " new_labels, ood_share, performance_drop",
        ),
        (
            {"data": {"datasets": {"c": {"source": "kaggle:titanic"}}}},
            "data.datasets.c.source: 'kaggle:titanic': unknown kind of data source 'kaggle';"
            " registered: csv, fashion-mnist, parquet, sklearn (or a file or folder path)",
        ),
        (
            {"monitor": {"webhook": "ftp://hooks"}},
            "monitor.webhook: 'ftp://hooks' does not match",
        ),
        (
            {"loop": {"triggers": {"interval": "weekly"}}},
            "loop.triggers.interval: 'weekly' does not match",
        ),
        (
            {"loop": {"rollout": {"steps": [0.1, 1.5]}}},
            "loop.rollout.steps[1]: 1.5 is not <= 1",
        ),
        (
            {"loop": {"holdout": 1}},
            "loop.holdout: 1 is not < 1",
        ),
        (
            {"data": {"datasets": {"c": {"spilt": {}}}}},
            "data.datasets.c.spilt: unknown field; allowed: roles, source, split, target, task, types",
        ),
        ({"project": {"name": "my project"}}, "project.name: 'my project' does not match"),
        (
            {"loop": {"gate": {"metric": "f1"}}},
            "loop.gate.metric: 'f1' is not one of 'accuracy', 'balanced_accuracy',"
            " 'precision_macro', 'recall_macro', 'f1_macro', 'roc_auc', 'pr_auc', 'log_loss',"
            " 'ece', 'mae', 'rmse', 'r2' or 'mape'",
        ),
        (
            {"monitor": {"performance": {"metric": "happiness"}}},
            "monitor.performance.metric: 'happiness' is not one of 'accuracy',",
        ),
        (
            {"train": {"early_stopping": {"metric": "val_loss"}}},
            "train.early_stopping.metric: 'val_loss' is not one of 'loss', 'accuracy',",
        ),
        (
            {"data": {"datasets": {"c": {"target": "y", "roles": {"z": "target"}}}}},
            "data.datasets.c: target is 'y' but roles make 'z' the target",
        ),
    ],
)
def test_errors_name_the_field_the_value_and_what_is_allowed(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    assert str(caught.value).startswith(message)


def test_several_problems_give_one_line_each() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"data": {"imbalance_ratio": 0, "datasets": {"c": {"task": "x"}}}})
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("data.datasets.c.task: 'x'")
    assert lines[1] == "data.imbalance_ratio: 0 is not > 1"


def test_the_spec_is_frozen() -> None:
    spec = parse_spec({"project": {"name": "p"}})
    with pytest.raises(ValidationError, match="frozen"):
        spec.project.name = "q"  # type: ignore[misc]


def test_defaults_and_split_fractions() -> None:
    spec = Spec()
    split = spec.dataset("anything").split
    assert (split.method, split.seed, split.stratify) == ("random", 0, True)
    assert split.train == pytest.approx(0.7)
    assert spec.data.datasets == {}


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "mlcycle.yaml"
    path.write_text("project:\n  name: [unclosed\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"mlcycle.yaml: line 3, column 1: invalid YAML"):
        load_spec(path)


def test_a_top_level_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mlcycle.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(SpecError, match="expected a mapping at the top level, got list"):
        load_spec(path)


def test_an_empty_file_is_the_default_spec(tmp_path: Path) -> None:
    path = tmp_path / "mlcycle.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    assert load_spec(path) == Spec()
