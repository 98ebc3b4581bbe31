"""A training run in a project: data → model → fit → evaluate → record.

:func:`train` is what ``mlcycle train`` and ``project``-level code call. It
loads a dataset version and its recorded split, fits the preprocessing on the
training rows, trains with :func:`~mlcycle.train._loop.fit`, checkpoints every
epoch into the artifact store, evaluates on the test rows that neither
training nor early stopping saw, writes the HTML report and records it all on
the run. :func:`resume` continues a run whose process died.

Each epoch is reported to an ``on_progress`` callback
(:class:`~mlcycle.train.EpochProgress`, :mod:`mlcycle.train._progress`):
the stage draws nothing, ``mlcycle train`` draws a Rich bar from the events.
Where the run ran (:mod:`~mlcycle.train._environment`: packages, git) and
what the model costs (:mod:`~mlcycle.train._cost`: FLOPs, memory) are
measured in modules of their own.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from mlcycle._runs import ActiveRun
from mlcycle.data import Schema
from mlcycle.errors import ConflictError, DataError, NotFoundError, SpecError
from mlcycle.spec import EvaluateSpec, ModelSpec, Spec, TrainSpec, format_validation_error
from mlcycle.store import DatasetVersionRecord
from mlcycle.train._checkpoint import Checkpoint
from mlcycle.train._cost import flops_per_sample, peak_memory_mb
from mlcycle.train._environment import environment
from mlcycle.train._evaluation import evaluate_model
from mlcycle.train._features import FeatureLayout, encode, encode_target, fit_layout
from mlcycle.train._loop import EpochReport, FitResult, TrainData, fit, head_width, pick_device
from mlcycle.train._models import MlcycleNet, build_model, model_config
from mlcycle.train._progress import Pace, ProgressCallback, print_progress

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = [
    "EpochRecorder",
    "TrainOutcome",
    "evaluate_run",
    "load_model",
    "resolve_data",
    "resume_here",
    "train_here",
]

SAFETENSORS = "application/vnd.safetensors"
JSON = "application/json"
CHECKPOINT_TENSORS = "checkpoint/state.safetensors"
CHECKPOINT_STATE = "checkpoint/state.json"
MODEL_WEIGHTS = "model/weights.safetensors"
MODEL_CONFIG = "model/model.json"


@dataclass(frozen=True)
class TrainOutcome:
    """What a finished training run produced."""

    run_id: str
    dataset: str
    test: dict[str, Any]
    summary: dict[str, Any]
    report: Path


def resolve_data(
    project: Project, ref: str | None, *, how: str = "pass data='NAME[@VERSION]'"
) -> str:
    """The dataset version to train on: ``NAME[@VERSION]``, or a source to version first.

    With no reference, the project's only dataset is used; ``how`` tells the
    caller how to name one when there is no such dataset (the CLI says its flag).
    """
    if ref is None:
        known = [d.name for d in project.datasets.list()]
        if len(known) == 1:
            return known[0]
        configured = [n for n, d in project.spec.data.datasets.items() if d.source]
        if not known and len(configured) == 1:
            return project.datasets.add(configured[0]).version.ref
        hint = f"known: {', '.join(known)}" if known else "none is versioned yet"
        raise NotFoundError(f"which dataset? {how} ({hint})")
    if ":" in ref or Path(project.root / ref).exists():
        return project.datasets.add(ref).version.ref
    return project.datasets.get(ref).ref


@dataclass
class _Prepared:
    version: DatasetVersionRecord
    schema: Schema
    layout: FeatureLayout
    data: TrainData
    tables: dict[str, Any]
    split_counts: dict[str, int]


def _prepare(project: Project, version: DatasetVersionRecord) -> _Prepared:
    schema = project.datasets.schema(version)
    if schema.target is None or schema.task is None:
        raise DataError(
            f"dataset {version.ref} has no target: set data.datasets.{version.dataset}.target "
            "in mlcycle.yaml and add it again"
        )
    tables = project.datasets.load_split(version)
    if tables["validation"].num_rows == 0:
        raise DataError(f"dataset {version.ref} has no validation rows: early stopping needs some")
    layout = fit_layout(schema, tables["train"])
    classes = schema.classes or ()
    data = TrainData(
        task=schema.task,
        n_classes=len(classes),
        train_x=encode(tables["train"], layout),
        train_y=encode_target(tables["train"], schema),
        val_x=encode(tables["validation"], layout),
        val_y=encode_target(tables["validation"], schema),
        classes=tuple(classes),
    )
    return _Prepared(
        version, schema, layout, data, tables, {k: t.num_rows for k, t in tables.items()}
    )


def _build(spec: TrainSpec, prepared: _Prepared, root: Path) -> MlcycleNet:
    data = prepared.data
    n_out = head_width(spec, data.task, data.n_classes)
    target_mean, target_std = 0.0, 1.0
    if data.task == "regression":
        target_mean = float(data.train_y.mean())
        target_std = float(data.train_y.std()) or 1.0
    torch.manual_seed(spec.seed)
    return build_model(
        spec.model,
        prepared.layout,
        data.task,
        n_out,
        target_mean=target_mean,
        target_std=target_std,
        root=root,
    )


def _pace(
    spec: TrainSpec, quiet: bool, on_progress: ProgressCallback | None, done: int = 0
) -> Pace | None:
    """What reports each epoch's progress: ``on_progress``, else a printed line unless quiet."""
    callback = on_progress or (None if quiet else print_progress)
    if callback is None:
        return None
    return Pace(callback, spec.max_epochs, spec.early_stopping.metric, done)


class EpochRecorder:
    """Records every epoch off the training thread: the newest checkpoint, then metrics.

    Serialising and storing a checkpoint costs milliseconds, as much as an
    epoch of a small model, so one worker thread writes while training goes on.
    When epochs come faster than checkpoints can be stored, the worker writes
    the newest one and the epochs in between only queue their metrics (which
    are written with the next checkpoint): training never waits, memory holds
    at most one snapshot, and the store always has a checkpoint at least as new
    as the metrics it holds. A resumed run continues from that checkpoint and
    re-logs the metrics a kill lost. With ``min_interval_s`` 0 every epoch's
    checkpoint is stored (training waits for the previous write if it must).
    """

    def __init__(
        self,
        run: ActiveRun,
        progress: Callable[[EpochReport], None] | None = None,
        min_interval_s: float = 0.0,
    ) -> None:
        self.run = run
        self.progress = progress
        self.min_interval_s = min_interval_s
        self._last_submit = -math.inf
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlcycle-record")
        self._pending: Future[None] | None = None
        self._metrics: list[tuple[int, dict[str, float]]] = []
        self.checkpoints_written = 0

    def __call__(self, report: EpochReport) -> None:
        if self.progress is not None:
            self.progress(report)
        self._metrics.append((report.epoch, report.metrics))
        if self._pending is not None:
            if self.min_interval_s > 0 and not self._pending.done():
                return  # still storing an older checkpoint: this epoch rides with the next
            self._pending.result()  # re-raise a failed write here, on the training thread
        now = time.monotonic()
        if now - self._last_submit < self.min_interval_s:
            return
        self._last_submit = now
        snapshot = copy.deepcopy(report.checkpoint)  # training goes on changing the tensors
        metrics, self._metrics = self._metrics, []
        self._pending = self._pool.submit(self._write, snapshot, metrics)

    def _write(
        self, checkpoint: Checkpoint | None, metrics: list[tuple[int, dict[str, float]]]
    ) -> None:
        if checkpoint is not None:
            tensors, state = checkpoint.to_bytes()
            self.run.log_artifact(CHECKPOINT_TENSORS, tensors, SAFETENSORS)
            self.run.log_artifact(CHECKPOINT_STATE, state, JSON)
            self.checkpoints_written += 1
        if metrics:
            self.run.log_metrics_rows(metrics)

    def close(self) -> None:
        """Wait for the pending write and store the metrics still queued."""
        try:
            if self._pending is not None:
                self._pending.result()
            if self._metrics:
                self._write(None, self._metrics)
                self._metrics = []
            self.run.update_summary({"checkpoints_written": self.checkpoints_written})
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> EpochRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finish(
    project: Project,
    run: ActiveRun,
    spec: TrainSpec,
    evaluate: EvaluateSpec,
    prepared: _Prepared,
    result: FitResult,
) -> TrainOutcome:
    model = result.model
    config = model_config(spec.model, prepared.layout, prepared.data.task, model.n_outputs)
    config |= {
        "classes": list(prepared.data.classes),
        "target": prepared.schema.target,
        "features": list(prepared.schema.features),
        "dataset": prepared.version.ref,
    }
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    run.log_artifact(MODEL_WEIGHTS, save_tensors(weights), SAFETENSORS)
    run.log_artifact(MODEL_CONFIG, json.dumps(config, indent=2).encode(), JSON)

    device = next(model.parameters()).device
    run.heartbeat(expect_s=result.train_seconds)  # evaluation takes at most about as long
    evaluation = evaluate_model(
        project,
        run.id,
        model,
        prepared.schema,
        prepared.layout,
        prepared.tables,
        evaluate,
        device=device,
        history=result.history,
        facts={"dataset": prepared.version.ref, "model": spec.model.kind},
        gap_warning=spec.gap_warning,
    )
    best = result.history[result.best_epoch] if result.best_epoch >= 0 else {}
    summary: dict[str, Any] = {
        # Epochs are counted from 1 wherever a person reads them ("best epoch 36 of 47").
        "best_epoch": result.best_epoch + 1 if result.best_epoch >= 0 else None,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "early_stopping_metric": spec.early_stopping.metric,
        "best_value": result.best_value,
        "val": {k[4:]: v for k, v in best.items() if k.startswith("val_")},
        "train_seconds": result.train_seconds,
        "samples_per_s": result.samples_seen / max(result.train_seconds, 1e-9),
        "parameters": sum(p.numel() for p in model.parameters()),
        "flops_per_sample": flops_per_sample(model, prepared.data),
        "peak_memory_mb": peak_memory_mb(device),
        "device": result.device,
        **evaluation.summary,
    }
    run.finish("finished", summary)
    return TrainOutcome(
        run_id=run.id,
        dataset=prepared.version.ref,
        test=evaluation.test,
        summary=summary,
        report=evaluation.report,
    )


def train_here(
    project: Project,
    *,
    data: str | None = None,
    model: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
    quiet: bool = True,
    name: str | None = None,
    on_start: Callable[[str], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> TrainOutcome:
    """:func:`~mlcycle.train.train` in this process (what every executor ends up running)."""
    changes: dict[str, Any] = dict(overrides or {})
    if model is not None:
        changes["train.model.kind"] = model
    if device is not None:
        changes["train.device"] = device
    spec: Spec = project.spec.with_overrides(changes) if changes else project.spec
    tspec = spec.train
    ref = resolve_data(project, data or tspec.data)
    prepared = _prepare(project, project.datasets.get(ref))
    torch_device = pick_device(tspec.device)
    net = _build(tspec, prepared, project.root)
    run = project.runs.start(
        name or f"{tspec.model.kind}-{prepared.version.dataset}",
        params={
            "train": tspec.model_dump(mode="json"),
            "evaluate": spec.evaluate.model_dump(mode="json"),
            "dataset": prepared.version.ref,
            "split": prepared.split_counts,
            "overrides": {k: v for k, v in changes.items()},
            "environment": environment(project.root),
        },
        dataset=prepared.version.ref,
        tags={"model": tspec.model.kind, "task": prepared.data.task},
    )
    with run:
        run.heartbeat()
        if on_start is not None:
            on_start(run.id)
        progress = _pace(tspec, quiet, on_progress)
        with EpochRecorder(run, progress, tspec.checkpoint_interval_s) as recorder:
            result = fit(
                tspec,
                net,
                prepared.data,
                device=torch_device,
                on_epoch=recorder,
                heartbeat=run.heartbeat,
            )
        return _finish(project, run, tspec, spec.evaluate, prepared, result)


def resume_here(
    project: Project,
    run_id: str,
    *,
    quiet: bool = True,
    on_progress: ProgressCallback | None = None,
) -> TrainOutcome:
    """:func:`~mlcycle.train.resume` in this process (what every executor ends up running)."""
    record = project.runs.get(run_id)
    if record.status == "finished":
        raise ConflictError(f"run {record.id} is finished: there is nothing to resume")
    if "train" not in record.params or record.dataset_version_id is None:
        raise ConflictError(f"run {record.id} is not a training run: it cannot be resumed")
    try:
        tspec = TrainSpec.model_validate(record.params["train"])
        evaluate = EvaluateSpec.model_validate(record.params["evaluate"])
    except ValueError as exc:
        raise SpecError(f"run {record.id}: its recorded spec is invalid: {exc}") from None
    prepared = _prepare(project, project.store.get_dataset_version_by_id(record.dataset_version_id))
    net = _build(tspec, prepared, project.root)
    checkpoint = None
    if CHECKPOINT_TENSORS in record.artifacts and CHECKPOINT_STATE in record.artifacts:
        checkpoint = Checkpoint.from_bytes(
            project.artifacts.read_bytes(record.artifacts[CHECKPOINT_TENSORS]),
            project.artifacts.read_bytes(record.artifacts[CHECKPOINT_STATE]),
        )
    project.store.resume_run(record.id, actor=project.actor)
    run = ActiveRun(project, record)
    if checkpoint is not None:
        logged = {p.step for p in project.runs.metrics(record.id, "train_loss")}
        for epoch, row in enumerate(checkpoint.state["history"]):
            if epoch not in logged:
                run.log_metrics(epoch, row)
    done = checkpoint.epoch + 1 if checkpoint else 0
    with run:
        run.heartbeat()
        progress = _pace(tspec, quiet, on_progress, done)
        with EpochRecorder(run, progress, tspec.checkpoint_interval_s) as recorder:
            result = fit(
                tspec,
                net,
                prepared.data,
                device=pick_device(tspec.device),
                resume=checkpoint,
                on_epoch=recorder,
                heartbeat=run.heartbeat,
            )
        return _finish(project, run, tspec, evaluate, prepared, result)


def load_model(project: Project, run_id: str) -> tuple[MlcycleNet, dict[str, Any]]:
    """Rebuild a run's trained PyTorch module from its safetensors weights and JSON config.

    Raises:
        NotFoundError: the run has no trained model (it did not finish training).
        IntegrityError: a model file differs from its recorded sha256.
    """
    record = project.runs.get(run_id)
    if MODEL_WEIGHTS not in record.artifacts or MODEL_CONFIG not in record.artifacts:
        raise NotFoundError(f"run {record.id} has no trained model (status {record.status})")
    config = json.loads(project.artifacts.read_bytes(record.artifacts[MODEL_CONFIG]))
    weights = load_tensors(project.artifacts.read_bytes(record.artifacts[MODEL_WEIGHTS]))
    net = build_model(
        ModelSpec.model_validate(config["model"]),
        FeatureLayout.from_dict(config["layout"]),
        config["task"],
        int(config["n_outputs"]),
        root=project.root,
    )
    net.load_state_dict(weights)
    net.eval()
    return net, config


def evaluate_run(
    project: Project,
    run_id: str,
    *,
    slices: tuple[str, ...] | None = None,
    bins: int | None = None,
) -> TrainOutcome:
    """Evaluate a finished run's model again on its test rows and rewrite its report.

    ``slices`` names columns to break the metrics down by (default: the recorded
    ``evaluate.slices``); a numeric one is cut into ``bins`` quantile bins
    (default: the recorded ``evaluate.bins``, 4).
    """
    record = project.runs.get(run_id)
    net, config = load_model(project, record.id)
    if record.dataset_version_id is None:
        raise NotFoundError(f"run {record.id} records no dataset version")
    version = project.store.get_dataset_version_by_id(record.dataset_version_id)
    schema = project.datasets.schema(version)
    evaluate = EvaluateSpec.model_validate(record.params.get("evaluate", {}))
    changes: dict[str, Any] = {}
    if slices is not None:
        changes["slices"] = slices
    if bins is not None:
        changes["bins"] = bins
    if changes:
        try:
            evaluate = EvaluateSpec.model_validate({**evaluate.model_dump(), **changes})
        except ValidationError as exc:
            raise SpecError(
                "evaluate." + format_validation_error(exc, EvaluateSpec).replace("\n", "; ")
            ) from None
    history_points = project.runs.metrics(record.id)
    history: dict[int, dict[str, float]] = {}
    for point in history_points:
        history.setdefault(point.step, {})[point.key] = point.value
    evaluation = evaluate_model(
        project,
        record.id,
        net,
        schema,
        FeatureLayout.from_dict(config["layout"]),
        project.datasets.load_split(version),
        evaluate,
        device=torch.device("cpu"),
        history=[history[k] for k in sorted(history)],
        facts={"dataset": version.ref, "model": config["model"]["kind"]},
        gap_warning=float(record.params.get("train", {}).get("gap_warning", 0.1)),
    )
    return TrainOutcome(
        run_id=record.id,
        dataset=version.ref,
        test=evaluation.test,
        summary={**record.summary, **evaluation.summary},
        report=evaluation.report,
    )
