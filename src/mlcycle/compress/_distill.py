"""Knowledge distillation, reported against the same student trained alone.

A distilled student is only worth having if it beats the same network
trained without its teacher, on the same budget and seeds: measured outside
the project, an untuned distillation did worse. :func:`distill` therefore
trains both for every seed, scores both on the same test rows, and reports
the difference with a paired bootstrap interval (rows resampled, the same
rows for both students, averaged over the seeds), so that a user sees
whether the teacher helped before shipping the student. The distilled
student of the first seed registers as a version of the teacher's model,
derived from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import SpecError
from mlcycle.train import FeatureLayout, encode, encode_target, load_model, predict, train
from mlcycle.workflow import register

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["DistillResult", "distill"]


@dataclass
class DistillResult:
    """Both students per seed, the difference with its interval, the registered version."""

    teacher: str
    teacher_accuracy: float | None
    student: dict[str, Any]
    temperature: float
    alpha: float
    seeds: list[dict[str, Any]] = field(default_factory=list)
    difference: dict[str, float] = field(default_factory=dict)
    registered: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _correct(project: Project, run_id: str, rows: Any, schema: Any) -> np.ndarray[Any, Any]:
    import torch

    model, config = load_model(project, run_id)
    layout = FeatureLayout.from_dict(config["layout"])
    proba = predict(model, encode(rows, layout), torch.device("cpu")).numpy()
    right: np.ndarray[Any, Any] = proba.argmax(axis=1) == encode_target(rows, schema)
    return right.astype(np.float64)


def distill(
    project: Project,
    teacher: str,
    *,
    student: Mapping[str, Any],
    seeds: Sequence[int] = (0,),
    temperature: float | None = None,
    alpha: float | None = None,
    register_as: str | None = None,
    n_boot: int = 2000,
    on_step: Callable[[str], None] | None = None,
) -> DistillResult:
    """Distil ``teacher`` (``NAME@VERSION``/``@ALIAS``) into the network ``student`` describes.

    ``student`` holds spec overrides (``model.hidden``, ``max_epochs``...);
    ``temperature`` and ``alpha`` default to ``train.distill``'s. Returns both
    students' test accuracy per seed and the mean difference (distilled minus
    alone) with its paired 95% interval.

    Raises:
        SpecError: no seeds, or the teacher does not fit the student's task.
        NotFoundError: no such teacher.
    """
    if not seeds:
        raise SpecError("--seeds: give at least one seed")
    say = on_step or (lambda _: None)
    parent = project.store.registry.get(teacher)
    dataset = parent.lineage.get("dataset")
    if not dataset:
        raise SpecError(f"{parent.ref} records no dataset version: the students need its data")
    settings = {
        **({"train.distill.temperature": temperature} if temperature is not None else {}),
        **({"train.distill.alpha": alpha} if alpha is not None else {}),
    }
    spec = project.spec.with_overrides({**student, **settings}, via="--student")
    version = project.datasets.get(dataset)
    schema = project.datasets.schema(version)
    test = project.datasets.load_split(version)["test"]
    result = DistillResult(
        teacher=parent.ref,
        teacher_accuracy=(parent.metrics.get("test") or {}).get("accuracy"),
        student=dict(student),
        temperature=spec.train.distill.temperature,
        alpha=spec.train.distill.alpha,
    )
    pairs = []
    for seed in seeds:
        base = {**student, **settings, "train.seed": seed}
        say(f"seed {seed}: the student alone")
        alone = train(project, data=version.ref, overrides=base, quiet=True, name="student-alone")
        say(f"seed {seed}: the student distilled from {parent.ref}")
        taught = train(
            project,
            data=version.ref,
            overrides={**base, "train.distill.teacher": parent.ref},
            quiet=True,
            name="student-distilled",
        )
        a = _correct(project, alone.run_id, test, schema)
        b = _correct(project, taught.run_id, test, schema)
        pairs.append((a, b))
        result.seeds.append(
            {
                "seed": seed,
                "alone": {
                    "run_id": alone.run_id,
                    "accuracy": alone.test.get("accuracy"),
                    "ci": alone.summary.get("test_ci", {}).get("accuracy"),
                },
                "distilled": {
                    "run_id": taught.run_id,
                    "accuracy": taught.test.get("accuracy"),
                    "ci": taught.summary.get("test_ci", {}).get("accuracy"),
                },
                "parameters": taught.summary.get("parameters"),
            }
        )
    diff = np.mean([b - a for a, b in pairs], axis=0)
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[index].mean(axis=1)
    result.difference = {
        "mean": float(diff.mean()),
        "low": float(np.quantile(means, 0.025)),
        "high": float(np.quantile(means, 0.975)),
    }
    first = result.seeds[0]["distilled"]["run_id"]
    record = register(
        project,
        first,
        register_as or parent.name,
        description=f"student distilled from {parent.ref}",
        reason=f"distilled from {parent.ref}",
        derived_from={
            "model": parent.name,
            "version": parent.version,
            "method": "distill",
            "params": {
                "student": dict(student),
                "temperature": result.temperature,
                "alpha": result.alpha,
                "accuracy_gain_vs_alone": result.difference,
            },
        },
    )
    result.registered = record.ref
    return result
