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
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError
from safetensors.torch import save as save_tensors

from mlcycle._runs import ActiveRun
from mlcycle.data import Schema
from mlcycle.errors import ConflictError, DataError, NotFoundError, SpecError
from mlcycle.plugins import MODEL_KINDS
from mlcycle.spec import AUTO_KIND, EvaluateSpec, Spec, TrainSpec, format_validation_error
from mlcycle.store import DatasetVersionRecord
from mlcycle.train._checkpoint import Checkpoint
from mlcycle.train._cost import flops_per_sample, peak_memory_mb
from mlcycle.train._distill import pin_teacher, teacher_logits
from mlcycle.train._environment import environment
from mlcycle.train._evaluation import evaluate_model
from mlcycle.train._features import FeatureLayout, encode, encode_target, fit_layout
from mlcycle.train._gbm import (
    GBM_TEXT,
    GbmFit,
    GbmModel,
    check_tabular,
    config_bytes,
    export_gbm_onnx,
    fit_gbm,
    gbm_config,
    gbm_options,
    load_gbm,
)
from mlcycle.train._loop import (
    EpochReport,
    FitResult,
    Replicas,
    TrainData,
    fit,
    head_width,
    pick_device,
)
from mlcycle.train._models import MlcycleNet, build_model, model_config, network_from_files
from mlcycle.train._progress import EpochProgress, Pace, ProgressCallback, print_progress

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = [
    "MODEL_ONNX",
    "EpochRecorder",
    "StopTraining",
    "TrainOutcome",
    "choose_kind",
    "evaluate_run",
    "load_model",
    "load_trained",
    "replicate_here",
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
# A gbm run's exported graph (a network's is exported at registration; a trial's at need).
MODEL_ONNX = "model/model.onnx"


@dataclass(frozen=True)
class TrainOutcome:
    """What a finished training run produced (``report`` None when it was not evaluated)."""

    run_id: str
    dataset: str
    test: dict[str, Any]
    summary: dict[str, Any]
    report: Path | None


class StopTraining(Exception):
    """Raised by an ``on_epoch`` hook to stop a run at once (a study prunes a trial).

    :func:`train_here` stores the epochs trained so far, marks the run
    ``status`` (``pruned``) with ``summary`` and lets the exception go on,
    with ``run_id`` and ``epochs_run`` filled in.
    """

    def __init__(self, status: str = "pruned", summary: Mapping[str, Any] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.summary = dict(summary or {})
        self.run_id = ""
        self.epochs_run = 0


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


def choose_kind(has_image: bool) -> tuple[str, str]:
    """What ``train.model.kind: auto`` trains: (kind, why) — cnn for images, gbm for a table.

    Example:
        >>> choose_kind(False)
        ('gbm', 'tabular data')
    """
    return ("cnn", "an image column") if has_image else ("gbm", "tabular data")


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


def _teacher(project: Project, spec: TrainSpec, prepared: _Prepared) -> Any:
    """The distillation teacher's logits on the training rows, or None."""
    if spec.distill.teacher is None:
        return None
    data = prepared.data
    return teacher_logits(
        project,
        spec.distill.teacher,
        prepared.tables["train"],
        task=data.task,
        classes=data.classes,
        width=head_width(spec, data.task, data.n_classes),
    )


def _pace(
    spec: TrainSpec,
    quiet: bool,
    on_progress: ProgressCallback | None,
    done: int = 0,
    *,
    epochs: int | None = None,
) -> Pace | None:
    """What reports each epoch's progress: ``on_progress``, else a printed line unless quiet.

    ``epochs`` is the most the run trains (default ``max_epochs``; a gbm's rounds).
    """
    callback = on_progress or (None if quiet else print_progress)
    if callback is None:
        return None
    if epochs is not None and on_progress is None:  # boosting rounds: a printed line per 50
        callback = _every(ROUNDS_PER_LINE, print_progress)
    return Pace(callback, epochs or spec.max_epochs, spec.early_stopping.metric, done)


ROUNDS_PER_LINE = 50


def _every(n: int, callback: ProgressCallback) -> ProgressCallback:
    def thinned(event: EpochProgress) -> None:
        if event.epoch % n == 0:
            callback(event)

    return thinned


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
    evaluate: EvaluateSpec | None,
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
    summary: dict[str, Any] = {
        **_loop_summary(result, spec),
        "parameters": sum(p.numel() for p in model.parameters()),
        "flops_per_sample": flops_per_sample(model, prepared.data),
        "peak_memory_mb": peak_memory_mb(device),
        "device": result.device,
    }
    if evaluate is None:  # a tuning trial: the study evaluates the trial it picks
        run.finish("finished", summary)
        return TrainOutcome(run.id, prepared.version.ref, {}, summary, None)
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
    summary |= evaluation.summary
    run.finish("finished", summary)
    return TrainOutcome(
        run_id=run.id,
        dataset=prepared.version.ref,
        test=evaluation.test,
        summary=summary,
        report=evaluation.report,
    )


def _finish_gbm(
    project: Project,
    run: ActiveRun,
    spec: TrainSpec,
    evaluate: EvaluateSpec | None,
    prepared: _Prepared,
    result: GbmFit,
) -> TrainOutcome:
    """Record boosted trees as :func:`_finish` records a network: files, summary, evaluation."""
    model = result.model
    config = gbm_config(spec.model, prepared.layout, prepared.data.task, prepared.data.classes)
    config |= {
        "target": prepared.schema.target,
        "features": list(prepared.schema.features),
        "dataset": prepared.version.ref,
    }
    run.log_artifact(GBM_TEXT, model.to_text().encode(), "text/plain")
    run.log_artifact(MODEL_CONFIG, config_bytes(config), JSON)
    if evaluate is not None:  # a study's trial is exported only if it is registered
        run.log_artifact(MODEL_ONNX, export_gbm_onnx(model), "application/onnx")
    summary: dict[str, Any] = {
        **_loop_summary(result, spec),
        "parameters": model.leaves,
        "trees": model.trees,
        "flops_per_sample": None,
        "peak_memory_mb": None,
        "device": result.device,
    }
    if evaluate is None:
        run.finish("finished", summary)
        return TrainOutcome(run.id, prepared.version.ref, {}, summary, None)
    run.heartbeat(expect_s=result.train_seconds)
    evaluation = evaluate_model(
        project,
        run.id,
        model,
        prepared.schema,
        prepared.layout,
        prepared.tables,
        evaluate,
        device=torch.device("cpu"),
        history=result.history,
        facts={"dataset": prepared.version.ref, "model": spec.model.kind},
        gap_warning=spec.gap_warning,
    )
    summary |= evaluation.summary
    run.finish("finished", summary)
    return TrainOutcome(run.id, prepared.version.ref, evaluation.test, summary, evaluation.report)


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
    on_epoch: Callable[[EpochReport], None] | None = None,
    parent: str | None = None,
    tags: Mapping[str, str] | None = None,
    experiment: str = "default",
    evaluate: bool = True,
    data_cache: dict[int, Any] | None = None,
    replicas: Replicas | None = None,
) -> TrainOutcome:
    """:func:`~mlcycle.train.train` in this process (what every executor ends up running).

    What a study adds: ``on_epoch`` is called after each epoch is recorded and
    may raise :class:`StopTraining`; ``parent`` and ``tags`` file the run under
    its study (``experiment`` files any run); ``evaluate`` False skips the test split (the study evaluates the
    trial it picks); ``data_cache`` keeps the encoded dataset between trials.
    ``replicas`` makes this process replica 0 of a data-parallel training: the
    one that records the run while the others run :func:`replicate_here`.
    """
    spec, changes, prepared, chosen = _setup(project, data, model, overrides, device, data_cache)
    tspec = spec.train
    if chosen is not None and not quiet and on_progress is None:
        print(chosen, file=sys.stderr)
    net: MlcycleNet | None = None
    if _network(tspec, replicas):
        torch_device = pick_device(tspec.device)
        net = _build(tspec, prepared, project.root)
    else:
        check_tabular(prepared.layout)
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
        parent=parent,
        tags={"model": tspec.model.kind, "task": prepared.data.task, **(tags or {})},
        experiment=experiment,
    )
    with run:
        run.heartbeat()
        if on_start is not None:
            on_start(run.id)
        if chosen is not None:
            run.update_summary({"model_choice": chosen})
        rounds = gbm_options(tspec.model).n_estimators if net is None else None
        progress = _pace(tspec, quiet, on_progress, epochs=rounds)
        epochs = 0
        try:
            with EpochRecorder(run, progress, tspec.checkpoint_interval_s) as recorder:

                def each_epoch(report: EpochReport) -> None:
                    nonlocal epochs
                    recorder(report)
                    epochs = report.epoch + 1
                    if on_epoch is not None:
                        on_epoch(report)

                if net is None:
                    boosted = fit_gbm(
                        tspec,
                        prepared.layout,
                        prepared.data,
                        on_epoch=each_epoch,
                        heartbeat=run.heartbeat,
                    )
                else:
                    result = fit(
                        tspec,
                        net,
                        prepared.data,
                        device=torch_device,
                        on_epoch=each_epoch,
                        heartbeat=run.heartbeat,
                        teacher=_teacher(project, tspec, prepared),
                        replicas=replicas,
                    )
        except StopTraining as stop:
            stop.run_id, stop.epochs_run = run.id, epochs
            run.finish(stop.status, {"epochs_run": epochs, **stop.summary})  # type: ignore[arg-type]
            raise
        judge = spec.evaluate if evaluate else None
        if net is None:
            return _finish_gbm(project, run, tspec, judge, prepared, boosted)
        return _finish(project, run, tspec, judge, prepared, result)


def _setup(
    project: Project,
    data: str | None,
    model: str | None,
    overrides: Mapping[str, Any] | None,
    device: str | None,
    data_cache: dict[int, Any] | None = None,
) -> tuple[Spec, dict[str, Any], _Prepared, str | None]:
    """The spec a new run trains with, the changes it records, its prepared data.

    The last item says which kind ``auto`` chose and why (None when the kind was named).
    """
    changes: dict[str, Any] = dict(overrides or {})
    if model is not None:
        changes["train.model.kind"] = model
    if device is not None:
        changes["train.device"] = device
    spec: Spec = project.spec.with_overrides(changes) if changes else project.spec
    if spec.train.distill.teacher is not None:  # the run names the version it learns from
        changes["train.distill.teacher"] = pin_teacher(project, spec.train.distill.teacher)
        spec = project.spec.with_overrides(changes)
    ref = resolve_data(project, data or spec.train.data)
    version = project.datasets.get(ref)
    if data_cache is not None and version.id in data_cache:
        prepared = data_cache[version.id]
    else:
        prepared = _prepare(project, version)
        if data_cache is not None:
            data_cache[version.id] = prepared
    chosen = None
    if spec.train.model.kind == AUTO_KIND:
        kind, why = choose_kind(prepared.layout.image is not None)
        chosen = f"model kind auto → {kind} ({why})"
        changes["train.model.kind"] = kind
        spec = spec.with_overrides({"train.model.kind": kind})
    return spec, changes, prepared, chosen


def _network(tspec: TrainSpec, replicas: Replicas | None) -> bool:
    """Whether the kind trains a network; trees (no network) have no data-parallel replicas.

    Raises:
        SpecError: replicas for a kind without a network.
    """
    network = MODEL_KINDS.get(tspec.model.kind).network
    if not network and replicas is not None:
        raise SpecError(
            f"train.workers: {replicas.world}: model kind {tspec.model.kind!r} trains trees "
            "in one process, not data-parallel replicas; set workers: 1"
        )
    return bool(network)


def _resumable(
    project: Project, run_id: str
) -> tuple[Any, TrainSpec, EvaluateSpec, _Prepared, Checkpoint | None]:
    """A run to resume: its record, recorded specs, prepared data and last checkpoint."""
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
    if not MODEL_KINDS.get(tspec.model.kind).network:
        raise ConflictError(
            f"run {record.id} trains {tspec.model.kind!r} trees, which keep no checkpoint: "
            "train again (boosting takes seconds)"
        )
    prepared = _prepare(project, project.store.get_dataset_version_by_id(record.dataset_version_id))
    checkpoint = None
    if CHECKPOINT_TENSORS in record.artifacts and CHECKPOINT_STATE in record.artifacts:
        checkpoint = Checkpoint.from_bytes(
            project.artifacts.read_bytes(record.artifacts[CHECKPOINT_TENSORS]),
            project.artifacts.read_bytes(record.artifacts[CHECKPOINT_STATE]),
        )
    return record, tspec, evaluate, prepared, checkpoint


def resume_here(
    project: Project,
    run_id: str,
    *,
    quiet: bool = True,
    on_progress: ProgressCallback | None = None,
    replicas: Replicas | None = None,
) -> TrainOutcome:
    """:func:`~mlcycle.train.resume` in this process (what every executor ends up running).

    ``replicas``: as for :func:`train_here`.
    """
    record, tspec, evaluate, prepared, checkpoint = _resumable(project, run_id)
    net = _build(tspec, prepared, project.root)
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
                teacher=_teacher(project, tspec, prepared),
                replicas=replicas,
            )
        return _finish(project, run, tspec, evaluate, prepared, result)


def replicate_here(
    project: Project,
    replicas: Replicas,
    *,
    data: str | None = None,
    model: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
    resume: str | None = None,
) -> None:
    """Train as a replica other than 0 of a data-parallel training; record nothing.

    It builds the same model from the same data and seed as replica 0 (which
    runs :func:`train_here` or :func:`resume_here` with the same arguments),
    trains on its share of every batch and returns when replica 0 stops. It
    only reads the store: the run, its metrics and checkpoints are replica 0's.
    """
    checkpoint = None
    if resume is not None:
        _, tspec, _, prepared, checkpoint = _resumable(project, resume)
    else:
        spec, _, prepared, _ = _setup(project, data, model, overrides, device)
        tspec = spec.train
    _network(tspec, replicas)
    fit(
        tspec,
        _build(tspec, prepared, project.root),
        prepared.data,
        device=pick_device(tspec.device),
        resume=checkpoint,
        teacher=_teacher(project, tspec, prepared),
        replicas=replicas,
    )


def load_model(project: Project, run_id: str) -> tuple[MlcycleNet, dict[str, Any]]:
    """Rebuild a run's trained PyTorch module from its safetensors weights and JSON config.

    Raises:
        NotFoundError: the run has no trained model (it did not finish training).
        IntegrityError: a model file differs from its recorded sha256.
    """
    record = project.runs.get(run_id)
    if GBM_TEXT in record.artifacts:
        raise ConflictError(
            f"run {record.id} trained a gbm model (LightGBM trees), not a PyTorch network; "
            "what needs the network's weights cannot use it"
        )
    if MODEL_WEIGHTS not in record.artifacts or MODEL_CONFIG not in record.artifacts:
        raise NotFoundError(f"run {record.id} has no trained model (status {record.status})")
    net, _, config = network_from_files(
        project.artifacts.read_bytes(record.artifacts[MODEL_CONFIG]),
        project.artifacts.read_bytes(record.artifacts[MODEL_WEIGHTS]),
        root=project.root,
    )
    return net, config


def load_trained(project: Project, run_id: str) -> tuple[MlcycleNet | GbmModel, dict[str, Any]]:
    """A run's trained model, whatever its kind: a PyTorch network or boosted trees.

    Raises:
        NotFoundError: the run has no trained model.
        IntegrityError: a model file differs from its recorded sha256.
    """
    record = project.runs.get(run_id)
    if GBM_TEXT in record.artifacts and MODEL_CONFIG in record.artifacts:
        config = json.loads(project.artifacts.read_bytes(record.artifacts[MODEL_CONFIG]))
        text = project.artifacts.read_bytes(record.artifacts[GBM_TEXT]).decode()
        return load_gbm(text, config), config
    return load_model(project, run_id)


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
    net, config = load_trained(project, record.id)
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


def _loop_summary(result: Any, spec: TrainSpec) -> dict[str, Any]:
    """What every run's summary says of its loop, network or trees: epochs, stop, best, pace."""
    best = result.history[result.best_epoch] if result.best_epoch >= 0 else {}
    return {
        # Epochs are counted from 1 wherever a person reads them ("best epoch 36 of 47").
        "best_epoch": result.best_epoch + 1 if result.best_epoch >= 0 else None,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "early_stopping_metric": spec.early_stopping.metric,
        "best_value": result.best_value,
        "val": {k[4:]: v for k, v in best.items() if k.startswith("val_")},
        "train_seconds": result.train_seconds,
        "samples_per_s": result.samples_seen / max(result.train_seconds, 1e-9),
    }
