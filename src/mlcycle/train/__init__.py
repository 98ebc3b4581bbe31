"""Training: the model zoo, the loop, checkpoints, runs, and export to ONNX with its parity check.

Example:
    >>> import tempfile, mlcycle
    >>> from mlcycle.train import train
    >>> with mlcycle.Project.init(tempfile.mkdtemp(), name="demo") as project:
    ...     outcome = train(project, data="sklearn:iris", overrides={"max_epochs": 3})
    ...     sorted(outcome.test)[:2]
    ['accuracy', 'balanced_accuracy']
"""

from __future__ import annotations

from mlcycle.train._base import Executor, ModelKind, ModelParts
from mlcycle.train._checkpoint import Checkpoint
from mlcycle.train._executor import LocalExecutor, TrainJob, resume, train
from mlcycle.train._export import export_onnx
from mlcycle.train._features import Encoded, FeatureLayout, encode, encode_target, fit_layout
from mlcycle.train._loop import (
    EpochReport,
    FitResult,
    TrainData,
    fit,
    head_width,
    pick_device,
    predict,
)
from mlcycle.train._models import MlcycleNet, build_model, init_weights
from mlcycle.train._parity import PARITY_ATOL, check_parity, verify_export
from mlcycle.train._progress import EpochProgress
from mlcycle.train._run import (
    TrainOutcome,
    evaluate_run,
    load_model,
    resolve_data,
)

__all__ = [
    "PARITY_ATOL",
    "Checkpoint",
    "Encoded",
    "EpochProgress",
    "EpochReport",
    "Executor",
    "FeatureLayout",
    "FitResult",
    "LocalExecutor",
    "MlcycleNet",
    "ModelKind",
    "ModelParts",
    "TrainData",
    "TrainJob",
    "TrainOutcome",
    "build_model",
    "check_parity",
    "encode",
    "encode_target",
    "evaluate_run",
    "export_onnx",
    "fit",
    "fit_layout",
    "head_width",
    "init_weights",
    "load_model",
    "pick_device",
    "predict",
    "resolve_data",
    "resume",
    "train",
    "verify_export",
]
