"""The plugin boundaries of training: what network to build, and where to run it.

A :class:`ModelKind` turns mlcycle's preprocessed inputs into a body that
ends in the head (``train.model.kind``); an :class:`Executor` runs a training
job somewhere (``train.executor``). Each is registered by name in
:mod:`mlcycle.plugins` and a new one is one new file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from torch import nn

    from mlcycle.project import Project
    from mlcycle.spec import ModelSpec
    from mlcycle.train._executor import TrainJob
    from mlcycle.train._models import Preprocess
    from mlcycle.train._run import TrainOutcome

__all__ = ["Executor", "ModelKind", "ModelParts"]


@dataclass(frozen=True)
class ModelParts:
    """What a model kind builds.

    Attributes:
        body: maps the row's features (the image encoder's flattened output,
            then the tabular features) to ``n_outputs`` values.
        image: maps images shaped ``(rows, channels, height, width)`` to
            features; None feeds the flattened pixels to the body.
    """

    body: nn.Module
    image: nn.Module | None = None


class ModelKind(ABC):
    """One kind of network after mlcycle's preprocessing (``mlp``, ``cnn``, ...).

    The preprocessing (imputation, standardisation, categorical encoding, pixel
    scaling) and the head's width are mlcycle's; a kind decides only what lies
    between them, from the fields of ``train.model`` it reads (its own
    settings go in ``train.model.options``). Construct it without arguments.

    A kind whose ``network`` is False is not a PyTorch network (``gbm``): it
    trains, saves and exports itself, and ``build`` refuses it.

    Example:
        >>> from torch import nn
        >>> class Linear(ModelKind):
        ...     def build(self, spec, inputs, n_outputs, *, root=None):
        ...         return ModelParts(nn.Linear(inputs.tabular_width + inputs.image_width, n_outputs))
    """

    network: ClassVar[bool] = True

    @abstractmethod
    def build(
        self, spec: ModelSpec, inputs: Preprocess, n_outputs: int, *, root: Path | None = None
    ) -> ModelParts:
        """The network's parts for inputs shaped as ``inputs`` says and ``n_outputs`` outputs.

        ``inputs.tabular_width`` is the width of the encoded tabular features,
        ``inputs.image_channels_shape`` the ``(channels, height, width)`` of the
        image column (None without one) and ``inputs.image_width`` its pixels.
        ``root`` is the project folder, for kinds that import user code.

        Raises:
            SpecError: the kind does not fit the data (a CNN without images).
        """


class Executor(ABC):
    """Where a training job runs (``local``: in this process).

    ``run`` is given the project and a :class:`~mlcycle.train._executor.TrainJob`
    (plain, picklable data: the dataset, the overrides, the run to resume) and
    returns what the training returned. An executor elsewhere (a Ray cluster,
    a queue) opens the project at ``project.root`` there and calls
    ``job.run_here`` on it.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def run(self, project: Project, job: TrainJob) -> TrainOutcome:
        """Run ``job`` for ``project`` and return its outcome (or raise what it raised)."""
