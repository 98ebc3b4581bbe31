"""Distillation: the teacher's answers steer the student, and the student alone is reported beside it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_tensors

from mlcycle import Project
from mlcycle.compress import compress, distill
from mlcycle.errors import ConflictError, NotFoundError, SpecError
from mlcycle.train import load_model, predict, train
from mlcycle.train._distill import teacher_logits
from mlcycle.train._run import _prepare, _teacher
from mlcycle.workflow import register
from tests.compress._variants import register_by_hand

pytestmark = pytest.mark.slow

STUDENT = {"model.hidden": [16], "max_epochs": 3, "evaluate.bootstrap": 50}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with Project.init(tmp_path_factory.mktemp("distill"), name="distill") as project:
        teacher = train(
            project,
            data="sklearn:digits",
            overrides={"max_epochs": 6, "evaluate.bootstrap": 50},
            quiet=True,
        )
        register(project, teacher.run_id, "digits", alias="champion")
        regression = train(
            project, data="sklearn:diabetes", overrides={"max_epochs": 2}, quiet=True
        )
        register(project, regression.run_id, "sugar")
        yield project


def _weights(project: Project, run_id: str) -> dict[str, Any]:
    record = project.runs.get(run_id)
    return load_tensors(project.artifacts.read_bytes(record.artifacts["model/weights.safetensors"]))


def test_alpha_zero_is_the_student_alone_and_alpha_one_is_not(project: Project) -> None:
    none = distill(project, "digits@champion", student=STUDENT, alpha=0.0)
    row = none.seeds[0]
    alone, taught = (
        _weights(project, row["alone"]["run_id"]),
        _weights(project, row["distilled"]["run_id"]),
    )
    assert all((alone[k] == taught[k]).all() for k in alone)
    assert none.difference["mean"] == 0.0
    full = distill(project, "digits@champion", student=STUDENT, alpha=1.0, temperature=2.0)
    row = full.seeds[0]
    alone, taught = (
        _weights(project, row["alone"]["run_id"]),
        _weights(project, row["distilled"]["run_id"]),
    )
    assert any((alone[k] != taught[k]).any() for k in alone)
    record = project.runs.get(row["distilled"]["run_id"])
    assert record.params["train"]["distill"] == {
        "teacher": "digits@1",  # the alias pinned to the version it named
        "temperature": 2.0,
        "alpha": 1.0,
    }
    version = project.store.registry.get(full.registered or "")
    assert version.lineage["derived_from"]["model"] == "digits"
    assert version.lineage["derived_from"]["method"] == "distill"
    assert version.lineage["derived_from"]["params"]["student"] == STUDENT
    low, high = full.difference["low"], full.difference["high"]
    assert low <= full.difference["mean"] <= high


def test_a_teacher_that_cannot_teach_is_refused_in_one_line(project: Project) -> None:
    with pytest.raises(SpecError, match=r"sugar@1 is a regression model"):
        distill(project, "sugar@1", student=STUDENT)
    with pytest.raises(NotFoundError):
        distill(project, "nosuch@1", student=STUDENT)
    with pytest.raises(SpecError, match="loss: cross_entropy or auto"):
        train(
            project,
            data="digits",
            overrides={**STUDENT, "loss": "bce", "train.distill.teacher": "digits@1"},
            quiet=True,
        )
    quantized = compress(
        project, "digits@1", methods=["dynamic-int8"], max_drop=100, batch=1, register=False
    )
    variant = register_by_hand(project, quantized)
    with pytest.raises(ConflictError, match="has no PyTorch weights"):
        distill(project, variant.ref, student=STUDENT)


def test_the_teacher_answers_the_rows_the_student_trains_on_in_their_order(
    project: Project,
) -> None:
    # The loss looks the teacher's answer up by the row's index in the student's training
    # rows (soft[index]): one row off and the student learns another image's answer.
    prepared = _prepare(project, project.datasets.get("digits"))
    spec = project.spec.with_overrides({"train.distill.teacher": "digits@champion"}).train
    soft = torch.softmax(torch.from_numpy(_teacher(project, spec, prepared)), dim=1).numpy()
    model, _ = load_model(project, project.store.registry.get("digits@1").run_id or "")
    expected = predict(model, prepared.data.train_x, torch.device("cpu")).numpy()
    assert soft.shape == expected.shape == (len(prepared.data.train_y), 10)
    np.testing.assert_allclose(soft, expected, atol=1e-5)
    agree = (soft.argmax(axis=1) == prepared.data.train_y).mean()
    assert agree > 0.9  # a trained teacher, right about most of its own training rows


def test_a_confident_teachers_small_probabilities_reach_the_student(project: Project) -> None:
    # At temperature T the student learns softmax(logits / T): a class the teacher gives
    # 1e-30 still has a say at T 8. The teacher's logits must reach the loss whole,
    # not as log-probabilities cut off at some floor.
    loud = train(
        project,
        data="digits",
        overrides={
            "model.init": "normal",
            "model.init_std": 1.0,
            "lr": 1e-6,
            "max_epochs": 1,
            "evaluate.bootstrap": 0,
        },
        quiet=True,
    )
    version = register(project, loud.run_id, "loud")
    prepared = _prepare(project, project.datasets.get("digits"))
    logits = teacher_logits(
        project,
        version.ref,
        prepared.tables["train"],
        task=prepared.data.task,
        classes=prepared.data.classes,
        width=10,
    )
    model, _ = load_model(project, loud.run_id)
    inputs = {
        name: torch.from_numpy(value)
        for name in ("numeric", "categorical", "image")
        if (value := getattr(prepared.data.train_x, name)) is not None
    }
    with torch.no_grad():
        raw = model(**inputs).double()
    spread = (raw.max(dim=1).values - raw.min(dim=1).values).median()
    assert spread > 100  # the test's premise: probabilities far below 1e-12
    for t in (1.0, 8.0):
        got = torch.log_softmax(torch.from_numpy(logits).double() / t, dim=1)
        want = torch.log_softmax(raw / t, dim=1)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)
