"""project.datasets.add: which version the data is, what it predicts, overrides, frame names."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from mlcycle import DataError, Project, SpecError


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project.init(tmp_path / "proj", name="proj") as p:
        yield p


@pytest.fixture
def wine_csv(project: Project) -> str:
    """scikit-learn's wine table with two columns either could predict."""
    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = frame.pop("target").map({0: "a", 1: "b", 2: "c"})
    frame.to_csv(project.root / "wine.csv", index=False)
    return "wine.csv"


def test_another_target_is_another_version_and_says_so(project: Project, wine_csv: str) -> None:
    first = project.datasets.add(wine_csv, target="cultivar")
    assert (first.version.ref, first.created, first.is_latest) == ("wine@1", True, True)
    assert (first.target, first.task, first.retargeted) == ("cultivar", "multiclass", None)
    assert str(first).splitlines()[0] == (
        "added wine@1 (178 rows, target 'cultivar' (multiclass)), now the latest of 'wine'"
    )

    second = project.datasets.add(wine_csv, target="alcohol")
    assert (second.version.ref, second.task, second.previous) == (
        "wine@2",
        "regression",
        first.version,
    )
    assert second.retargeted == (
        "wine@2 predicts target 'alcohol' (regression) where wine@1 predicted target "
        "'cultivar' (multiclass); 'wine' without a version now means @2: name wine@1 to keep "
        "the old target"
    )
    assert second.retargeted in str(second)

    again = project.datasets.add(wine_csv, target="cultivar")
    assert (again.version.ref, again.created, again.is_latest) == ("wine@1", False, False)
    assert again.latest.ref == "wine@2"
    assert str(again).splitlines()[0] == (
        "unchanged: the same data as wine@1 (178 rows, target 'cultivar' (multiclass)), which "
        "is not the latest: wine@2 is (target 'alcohol' (regression))"
    )
    assert repr(again) == (
        "DatasetAdded('wine@1', created=False, latest='wine@2', target='cultivar', "
        "task='multiclass')"
    )


def test_the_summary_is_logged(
    project: Project, wine_csv: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="mlcycle.datasets"):
        added = project.datasets.add(wine_csv, target="cultivar")
    assert caplog.messages == [str(added)]


def test_roles_types_and_task_without_editing_the_spec(project: Project) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "ref": [f"R{i:04d}" for i in range(300)],
            "zip_code": rng.choice([2139, 10001, 94110], 300),
            "grade": rng.integers(1, 6, 300),
            "y": rng.choice(["no", "yes"], 300),
        }
    )
    plain = project.datasets.add(frame, name="loans")
    assert any("'ref' holds a different value" in w for w in plain.warnings)
    assert any("'zip_code' holds whole numbers" in w for w in plain.warnings)
    added = project.datasets.add(
        frame,
        name="loans",
        roles={"ref": "id"},
        types={"zip_code": "categorical"},
        target="grade",
        task="multiclass",
    )
    schema = project.datasets.schema(added.version)
    assert (schema.ids, schema.column("zip_code").type, schema.target) == (
        ("ref",),
        "categorical",
        "grade",
    )
    assert (schema.task, added.warnings) == ("multiclass", [])


def test_overrides_are_checked_like_the_spec(project: Project) -> None:
    with pytest.raises(SpecError, match=r"^dataset 'iris': roles\.x: 'boss' is not one of"):
        project.datasets.add("sklearn:iris", roles={"x": "boss"})  # type: ignore[dict-item]
    with pytest.raises(DataError, match=r"^roles: column 'petal' is not in the data; available"):
        project.datasets.add("sklearn:iris", roles={"petal": "id"})
    with pytest.raises(DataError, match=r"^task is binary but target 'target' has 3 distinct"):
        project.datasets.add("sklearn:iris", task="binary")


def test_an_explicit_target_replaces_the_one_the_spec_roles_name(project: Project) -> None:
    spec = project.root / "mlcycle.yaml"
    spec.write_text("data:\n  datasets:\n    iris:\n      roles: {target: target}\n")
    with Project.open(project.root) as reopened:
        added = reopened.datasets.add("sklearn:iris", target="petal_width_cm")
        assert (added.target, added.task) == ("petal_width_cm", "regression")


def test_a_frame_needs_a_name(project: Project) -> None:
    frame = pd.DataFrame({"x": np.arange(30.0), "y": ["a", "b", "c"] * 10})
    with pytest.raises(DataError) as info:
        project.datasets.add(frame, target="y")
    assert str(info.value) == (
        "a pandas DataFrame has no name to version it under: pass name='...' "
        "(letters, digits, '_', '.' or '-')"
    )
    assert project.datasets.list() == []
    assert project.datasets.add(frame, name="abc", target="y").version.ref == "abc@1"
