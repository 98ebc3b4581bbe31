"""Runs filtered by tag and dataset in the store; deleting a run and the artifacts only it used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcycle import Project
from mlcycle.errors import ConflictError, NotFoundError


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project.init(tmp_path / "proj", name="proj") as p:
        p.datasets.add("sklearn:iris")
        yield p


def test_tags_and_dataset_filter_in_the_store(project: Project) -> None:
    with project.runs.start("a", tags={"team": "fraud", "stage": "dev"}, dataset="iris@1") as a:
        pass
    with project.runs.start("b", tags={"team": "fraud"}, experiment="x") as b:
        pass
    with project.runs.start("c", tags={"team": "risk", "stage": "dev"}, dataset="iris") as c:
        pass

    def ids(**filters: object) -> list[str]:
        return [r.name for r in project.runs.list(**filters)]  # type: ignore[arg-type]

    assert ids(tags={"team": "fraud"}) == ["b", "a"]
    assert ids(tags={"team": "fraud", "stage": "dev"}) == ["a"]
    assert ids(tags={"team": "nobody"}) == []
    assert ids(dataset="iris") == ["c", "a"]
    assert ids(dataset="iris@1") == ["c", "a"]
    assert ids(dataset="iris@2") == []
    assert ids(dataset="iris", tags={"team": "risk"}) == ["c"]
    assert ids(experiment="x") == ["b"]
    assert {a.id, b.id, c.id} == {r.id for r in project.runs.list(limit=None)}
    tagged = project.runs.tag(a.id[:8], {"team": "risk", "new": "1"})
    assert tagged.tags == {"team": "risk", "stage": "dev", "new": "1"}
    assert ids(tags={"team": "risk"}) == ["c", "a"]


def test_delete_removes_the_run_and_only_the_artifacts_nothing_else_uses(
    project: Project,
) -> None:
    with project.runs.start("keep") as keep:
        shared = keep.log_artifact("shared.bin", b"used by both runs", "application/octet-stream")
    with project.runs.start("doomed", tags={"k": "v"}) as doomed:
        doomed.log_metrics(0, {"loss": 1.0})
        doomed.log_artifact("shared.bin", b"used by both runs", "application/octet-stream")
        own = doomed.log_artifact("own.bin", b"only this run", "application/octet-stream")
    with project.runs.start("child", parent=doomed.id) as child:
        pass
    blobs = project.artifacts.blobs

    done = project.runs.delete(doomed.id)

    assert done.to_dict() == {
        "run_id": doomed.id,
        "name": "doomed",
        "artifacts_deleted": 1,
        "artifacts_kept": 1,
    }
    with pytest.raises(NotFoundError):
        project.runs.get(doomed.id)
    assert not blobs.exists(own)
    with pytest.raises(NotFoundError):
        project.store.get_artifact(own)
    assert project.artifacts.read_bytes(shared) == b"used by both runs"
    assert project.runs.get(child.id).parent_run_id is None
    assert project.store.metric_keys([doomed.id]) == []
    events = project.store.list_events(entity_type="run", entity_id=doomed.id)
    assert events[0].action == "run.deleted"


def test_a_run_a_model_version_was_made_from_is_not_deleted(project: Project) -> None:
    with project.runs.start("registered") as run:
        sha = run.log_artifact("model.onnx", b"graph", "application/octet-stream")
    project.store.registry.add_version(
        "iris-model",
        run_id=run.id,
        task="multiclass",
        metrics={},
        lineage={"run": run.id},
        signature={},
        files={"model.onnx": sha},
        actor="test",
    )
    with pytest.raises(ConflictError, match=r"used by model version iris-model@1") as caught:
        project.runs.delete(run.id)
    assert "\n" not in str(caught.value)
    assert project.runs.get(run.id).artifacts == {"model.onnx": sha}
    project.store.registry.delete_version("iris-model", 1, actor="test", reason=None)
    # The version's files are gone with it; the run's artifact is its own again, and goes.
    assert project.runs.delete(run.id).artifacts_deleted == 1
    assert not project.artifacts.blobs.exists(sha)
