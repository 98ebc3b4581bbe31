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

from mlcycle.train._adversarial import ATTACKS, AttackBudget, fgsm, pgd
from mlcycle.train._base import Executor, ModelKind, ModelParts
from mlcycle.train._checkpoint import Checkpoint
from mlcycle.train._evaluation import evaluate_outputs
from mlcycle.train._executor import LocalExecutor, TrainJob, resume, train
from mlcycle.train._export import export_module, export_onnx
from mlcycle.train._features import Encoded, FeatureLayout, encode, encode_target, fit_layout
from mlcycle.train._gbm import GBM_TEXT, GbmModel, export_gbm_onnx, load_gbm, verify_gbm_export
from mlcycle.train._loop import (
    EpochReport,
    FitResult,
    TrainData,
    fit,
    head_width,
    pick_device,
    predict,
)
from mlcycle.train._models import MlcycleNet, build_model, init_weights, network_from_files
from mlcycle.train._parity import PARITY_ATOL, check_parity, verify_export
from mlcycle.train._progress import EpochProgress
from mlcycle.train._run import (
    MODEL_ONNX,
    StopTraining,
    TrainOutcome,
    choose_kind,
    evaluate_run,
    load_model,
    load_trained,
    resolve_data,
)

__all__ = [
    "ATTACKS",
    "GBM_TEXT",
    "MODEL_ONNX",
    "PARITY_ATOL",
    "AttackBudget",
    "Checkpoint",
    "Encoded",
    "EpochProgress",
    "EpochReport",
    "Executor",
    "FeatureLayout",
    "FitResult",
    "GbmModel",
    "LocalExecutor",
    "MlcycleNet",
    "ModelKind",
    "ModelParts",
    "StopTraining",
    "TrainData",
    "TrainJob",
    "TrainOutcome",
    "build_model",
    "check_parity",
    "choose_kind",
    "encode",
    "encode_target",
    "evaluate_outputs",
    "evaluate_run",
    "export_gbm_onnx",
    "export_module",
    "export_onnx",
    "fgsm",
    "fit",
    "fit_layout",
    "head_width",
    "init_weights",
    "load_gbm",
    "load_model",
    "load_trained",
    "network_from_files",
    "pgd",
    "pick_device",
    "predict",
    "resolve_data",
    "resume",
    "train",
    "verify_export",
    "verify_gbm_export",
]
