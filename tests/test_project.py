"""Projects: init, discovery, spec errors, store selection, datasets and runs end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlcycle import (
    ConflictError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    Project,
    SpecError,
)
from mlcycle.project import SPEC_FILE, STATE_DIR
from mlcycle.spec import parse_spec


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project.init(tmp_path / "proj", name="proj") as p:
        yield p


def test_init_writes_a_commented_spec_and_the_state_folder(project: Project) -> None:
    text = (project.root / SPEC_FILE).read_text()
    assert "name: proj" in text and "# Metadata store" in text
    assert (project.root / STATE_DIR / "mlcycle.db").is_file()
    assert project.store.backend == "sqlite"
    assert [e.action for e in project.store.list_events()] == ["project.created"]


def test_the_specs_tune_and_loop_sections_are_written_with_their_examples(
    project: Project,
) -> None:
    text = (project.root / SPEC_FILE).read_text()
    spec = parse_spec(yaml.safe_load(text))
    assert spec.tune.sampler == "tpe" and spec.tune.n_trials == 20
    assert "#     lr: {low: 0.0001, high: 0.03, log: true" in text
    assert "#   tune: {n_trials: 10, timeout_s: 600.0}" in text


def test_init_refuses_an_existing_project(project: Project) -> None:
    with pytest.raises(ConflictError, match="already a project"):
        Project.init(project.root)


def test_open_finds_the_project_from_a_subfolder(project: Project) -> None:
    sub = project.root / "notebooks" / "deep"
    sub.mkdir(parents=True)
    with Project.open(sub) as found:
        assert found.root == project.root


def test_open_outside_a_project_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        NotFoundError, match=r"no mlcycle.yaml in .* or any folder above it"
    ) as info:
        Project.open(tmp_path)
    # Said the Python way: a notebook has no --project flag.
    assert str(info.value).endswith(
        ": make one with Project.init(path), or open one with Project.open(path)"
    )


def test_errors_of_the_python_api_name_its_arguments_not_cli_flags(project: Project) -> None:
    from mlcycle.monitor import parse_since
    from mlcycle.train import resolve_data

    project.datasets.add("sklearn:iris")
    project.datasets.add("sklearn:wine")
    with pytest.raises(NotFoundError) as info:
        resolve_data(project, None)
    assert str(info.value) == "which dataset? pass data='NAME[@VERSION]' (known: iris, wine)"
    with pytest.raises(SpecError) as spec_info:
        project.spec.with_overrides({"lrr": 1})
    assert str(spec_info.value) == "override lrr: train.lrr names no field of the spec"
    with pytest.raises(SpecError) as since_info:
        parse_since("soon")
    assert str(since_info.value).startswith("duration 'soon': expected a number and s, m, h or d")


def test_an_invalid_spec_is_reported_with_its_path(project: Project) -> None:
    (project.root / SPEC_FILE).write_text("data:\n  imbalance_ratio: -1\n")
    with pytest.raises(SpecError, match=r"^data.imbalance_ratio: -1 is not > 1$"):
        Project.open(project.root)


def test_the_store_url_comes_from_the_environment(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCYCLE_STORE_URL", pg_url)
    with Project.init(tmp_path / "team", name="team") as p:
        assert p.store.backend == "postgresql"
        p.datasets.add("sklearn:iris")
        assert [d.name for d in p.store.list_datasets()] == ["iris"]
    assert not (tmp_path / "team" / STATE_DIR / "mlcycle.db").exists()


def test_breast_cancer_twice_is_one_version_with_the_expected_profile(project: Project) -> None:
    first = project.datasets.add("sklearn:breast_cancer")
    second = project.datasets.add("sklearn:breast_cancer")
    assert first.created and not second.created
    assert second.version == first.version
    assert [v.version for v in project.datasets.versions("breast_cancer")] == [1]
    profile = first.version.profile
    assert profile["rows"] == 569
    assert profile["features"] == 30
    assert profile["class_balance"] == {"malignant": 212, "benign": 357}
    assert first.version.ref == "breast_cancer@1"


def test_a_version_loads_back_and_its_split_is_fixed(project: Project) -> None:
    added = project.datasets.add("sklearn:wine")
    table = project.datasets.load("wine@1")
    assert table.num_rows == 178
    split = project.datasets.split("wine")
    assert sum(len(v) for v in split.values()) == 178
    assert set(split["train"]).isdisjoint(split["test"])
    assert {k: len(v) for k, v in split.items()} == added.split.counts

    # A later spec asks for another split: the version keeps the split first recorded.
    spec_file = project.root / SPEC_FILE
    spec_file.write_text(
        spec_file.read_text().replace(
            "  datasets: {}", "  datasets:\n    wine:\n      split: {seed: 7, test: 0.3}"
        )
    )
    with Project.open(project.root) as reopened:
        again = reopened.datasets.add("sklearn:wine")
        assert not again.created
        assert again.split.config["seed"] == 7
        for part, rows in reopened.datasets.split("wine@1").items():
            np.testing.assert_array_equal(rows, split[part])


def test_a_tampered_dataset_snapshot_is_refused(project: Project) -> None:
    version = project.datasets.add("sklearn:iris").version
    record = project.store.get_artifact(version.artifact_sha256)
    path = Path(record.uri)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"expected sha256 {version.artifact_sha256}"):
        project.datasets.load("iris")


def test_unknown_dataset_references(project: Project) -> None:
    project.datasets.add("sklearn:iris")
    with pytest.raises(NotFoundError, match="dataset 'irsi' does not exist; known: iris"):
        project.datasets.get("irsi@1")
    with pytest.raises(NotFoundError, match="version 'x' is not a positive integer"):
        project.datasets.get("iris@x")


def test_a_dataset_name_breaking_the_rule_is_refused_before_anything_is_stored(
    project: Project,
) -> None:
    blobs = project.root / STATE_DIR / "artifacts" / "sha256"
    for bad in ("..", "nl\n", ".hidden", "x" * 101):
        with pytest.raises(InvalidNameError, match=r"^dataset name .*: expected letters, digits"):
            project.datasets.add("sklearn:iris", name=bad)
    assert project.store.list_datasets() == []
    assert not blobs.exists() or not any(blobs.iterdir())


def test_runs_record_metrics_and_how_they_ended(project: Project) -> None:
    project.datasets.add("sklearn:iris")
    with project.runs.start("ok", params={"lr": 0.1}, dataset="iris@1") as run:
        run.log_metrics(0, {"loss": 1.0, "acc": 0.3})
        run.log_metrics(1, {"loss": 0.5, "acc": 0.9})
        sha = run.log_artifact("notes.txt", b"hello", "text/plain")
    with pytest.raises(RuntimeError), project.runs.start("boom") as failing:
        raise RuntimeError("diverged")
    ok = project.runs.get(run.id)
    assert ok.status == "finished"
    assert ok.dataset_version_id == project.datasets.get("iris@1").id
    assert ok.artifacts == {"notes.txt": sha}
    assert [p.value for p in project.runs.metrics(run.id, "loss")] == [1.0, 0.5]
    bad = project.runs.get(failing.id)
    assert bad.status == "failed"
    assert bad.summary["error"] == "RuntimeError: diverged"


def test_the_same_rows_with_other_roles_are_another_version(project: Project) -> None:
    first = project.datasets.add("sklearn:iris").version
    spec_file = project.root / SPEC_FILE
    spec_file.write_text(
        spec_file.read_text().replace(
            "  datasets: {}", "  datasets:\n    iris:\n      roles: {petal_width_cm: ignore}"
        )
    )
    with Project.open(project.root) as reopened:
        second = reopened.datasets.add("sklearn:iris")
        assert second.created and second.version.version == 2
        assert "petal_width_cm" not in reopened.datasets.schema("iris@2").features
        assert second.version.profile["content_fingerprint"] == first.profile["content_fingerprint"]
        assert not reopened.datasets.add("sklearn:iris").created
