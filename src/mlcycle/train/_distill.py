"""The teacher of a distillation: a registered version, run in PyTorch from its weights.

The teacher answers once, on the training rows, before the first epoch;
:func:`~mlcycle.train.fit` then distils those answers (``train.distill``).
The teacher is pinned to a version number when the run starts, so that a
resumed run, or one read a year later, names the model it learned from even
if the alias has moved.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mlcycle.errors import ConflictError, SpecError
from mlcycle.train._features import Encoded, encode
from mlcycle.train._loop import _take, _tensors
from mlcycle.train._models import MlcycleNet, network_from_files

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.project import Project

__all__ = ["pin_teacher", "teacher_logits"]

FIELD = "train.distill.teacher"


def pin_teacher(project: Project, ref: str) -> str:
    """``NAME@VERSION`` of the teacher ``ref`` names now (an alias resolved).

    Raises:
        NotFoundError: no such model or version.
    """
    return project.store.registry.get(ref).ref


def teacher_logits(
    project: Project, ref: str, rows: pa.Table, *, task: str, classes: tuple[str, ...], width: int
) -> np.ndarray[Any, Any]:
    """The teacher's logits on ``rows`` (a student of ``task`` with ``classes``).

    Raises:
        SpecError: a regression teacher or student, other classes, a student
            whose head is not one logit per class (``width``).
        ConflictError: the version has no PyTorch weights (a compressed variant).
    """
    version = project.store.registry.get(ref)
    if task == "regression" or version.task == "regression":
        raise SpecError(
            f"{FIELD}: {version.ref} is a {version.task} model and the student a {task} one; "
            "distillation needs a classifier teacher and a classifier student"
        )
    if "weights.safetensors" not in version.files or "model.json" not in version.files:
        raise ConflictError(
            f"{FIELD}: {version.ref} has no PyTorch weights (a gbm model, or a compressed variant?); "
            "distil from the version it was derived from"
        )
    config = json.loads(project.artifacts.read_bytes(version.files["model.json"]))
    if tuple(config["classes"]) != tuple(classes):
        raise SpecError(
            f"{FIELD}: {version.ref} predicts classes {list(config['classes'])}, "
            f"the student's data has {list(classes)}"
        )
    if width != len(classes):
        raise SpecError(
            f"{FIELD}: the student has {width} output(s); distillation needs one logit per "
            "class (train.loss: cross_entropy or auto, not bce)"
        )
    net, layout, _ = network_from_files(
        project.artifacts.read_bytes(version.files["model.json"]),
        project.artifacts.read_bytes(version.files["weights.safetensors"]),
        root=project.root,
    )
    return _logits(net, encode(rows, layout))


@torch.no_grad()
def _logits(net: MlcycleNet, x: Encoded, batch: int = 4096) -> np.ndarray[Any, Any]:
    """The teacher's raw logits, one per class (a one-logit BCE teacher: ``[0, z]``).

    Logits, not probabilities: at temperature T the student learns
    ``softmax(logits / T)``, where a class the teacher gives 1e-30 still
    weighs; probabilities would underflow or be floored long before.
    """
    net.eval()
    inputs = _tensors(x, torch.device("cpu"))
    parts = []
    for start in range(0, len(x), batch):
        raw = net(**_take(inputs, torch.arange(start, min(start + batch, len(x))))).float()
        if raw.shape[1] == 1:
            raw = torch.cat([torch.zeros_like(raw), raw], dim=1)
        parts.append(raw)
    width = net.n_outputs if net.n_outputs > 1 else 2
    out = torch.cat(parts) if parts else torch.zeros(0, width)
    return out.numpy()
