"""The training loop: initialise, forward, loss, backward, step, validate, stop.

:func:`fit` reads top to bottom like nanoGPT's ``train.py``, with a typed
config instead of globals. It knows nothing of the store: whoever calls it
passes ``on_epoch`` to record metrics and checkpoints, and may pass a
checkpoint to continue from. On the CPU, the same config, data and seed give
the same weights, resumed or not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from mlcycle.errors import DataError, SpecError
from mlcycle.evaluate import label_metrics, metric, metric_names, point_metrics
from mlcycle.spec import TrainSpec
from mlcycle.train._adversarial import AttackBudget, fgsm, pgd
from mlcycle.train._checkpoint import Checkpoint
from mlcycle.train._features import Encoded
from mlcycle.train._models import MlcycleNet

__all__ = [
    "EpochReport",
    "FitResult",
    "Replicas",
    "TrainData",
    "fit",
    "head_width",
    "pick_device",
    "predict",
]

# Validation metrics recorded every epoch (cheap: no sort per class); the
# early-stopping metric, any of the metric table's, is added when not among them.
EPOCH_METRICS = {
    "classification": ("accuracy", "balanced_accuracy", "f1_macro"),
    "regression": ("mae", "rmse", "r2"),
}


@dataclass
class TrainData:
    """Encoded inputs and targets of the train and validation splits."""

    task: str
    n_classes: int
    train_x: Encoded
    train_y: np.ndarray[Any, Any]
    val_x: Encoded
    val_y: np.ndarray[Any, Any]
    classes: tuple[str, ...] = ()


@dataclass
class EpochReport:
    epoch: int
    metrics: dict[str, float]
    improved: bool
    checkpoint: Checkpoint | None  # None: nothing to resume from (a boosting round)


@dataclass
class FitResult:
    model: MlcycleNet
    best_epoch: int  # index from 0 (-1: no epoch improved); records count from 1
    best_value: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]]
    train_seconds: float
    samples_seen: int
    device: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Replicas:
    """This process's place among the data-parallel replicas of one training (DDP).

    Every replica runs :func:`fit` on the same data and seed: each takes rows
    ``rank, rank + world, ...`` of every batch, so that the gradients the
    wrapped module averages over the replicas are those of the whole batch
    (without dropout the steps are one process's, up to float rounding and
    the uneven split of a last batch of odd size; with it, each replica draws
    its own masks);
    all validate on every validation row, and stop when replica 0 says so.
    ``wrap`` turns the model into the module whose backward pass all-reduces
    the gradients (``DistributedDataParallel``); the process group must be
    initialised (Ray Train does it).
    """

    rank: int
    world: int
    wrap: Callable[[nn.Module], nn.Module]

    @property
    def leader(self) -> bool:
        """Whether this replica is the one that records the run."""
        return self.rank == 0

    def sum(self, value: Tensor) -> Tensor:
        """``value`` summed over the replicas, in place."""
        torch.distributed.all_reduce(value)
        return value

    def leaders(self, flag: bool) -> bool:
        """Replica 0's ``flag``, on every replica."""
        box = torch.tensor([int(flag)])
        torch.distributed.broadcast(box, src=0)
        return bool(box.item())


def pick_device(requested: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU.

    Raises:
        SpecError: CUDA was asked for and is not available.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(f"train.device: {requested!r} but no CUDA device is available")
    return torch.device(requested)


def _tensors(x: Encoded, device: torch.device) -> dict[str, Tensor]:
    out = {}
    for name in ("numeric", "categorical", "image"):
        value = getattr(x, name)
        if value is not None:
            out[name] = torch.from_numpy(value).to(device)
    return out


def _take(inputs: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {name: value[index] for name, value in inputs.items()}


def _loss_name(spec: TrainSpec, task: str) -> str:
    if spec.loss == "auto":
        return "mse" if task == "regression" else "cross_entropy"
    return spec.loss


def head_width(spec: TrainSpec, task: str, n_classes: int) -> int:
    """Outputs per row the model needs for its loss: the one place the head's width is decided.

    One for regression and for binary classification trained with BCE (a logit
    for the second class); one logit per class otherwise.

    Example:
        >>> head_width(TrainSpec(), "multiclass", 3), head_width(TrainSpec(loss="bce"), "binary", 2)
        (3, 1)
    """
    return n_classes if _loss_name(spec, task) == "cross_entropy" else 1


def _loss_fn(spec: TrainSpec, data: TrainData, device: torch.device) -> nn.Module:
    """The loss module; the model has :func:`head_width` outputs."""
    loss = _loss_name(spec, data.task)
    classification = data.task != "regression"
    if classification != (loss in {"cross_entropy", "bce"}):
        raise SpecError(f"train.loss: {loss!r} does not fit a {data.task} task")
    if loss == "bce" and data.n_classes != 2:
        raise SpecError(f"train.loss: 'bce' needs 2 classes, the target has {data.n_classes}")
    weights = _class_weights(spec, data)
    if loss == "cross_entropy":
        w = torch.tensor(weights, dtype=torch.float32, device=device) if weights else None
        return nn.CrossEntropyLoss(weight=w)
    if loss == "bce":
        pos = torch.tensor(weights[1] / weights[0], device=device) if weights else None
        return nn.BCEWithLogitsLoss(pos_weight=pos)
    return nn.MSELoss() if loss == "mse" else nn.HuberLoss()


def _class_weights(spec: TrainSpec, data: TrainData) -> list[float] | None:
    if spec.class_weight == "none" or data.task == "regression":
        return None
    counts = np.bincount(data.train_y, minlength=data.n_classes).astype(np.float64)
    if spec.class_weight == "balanced":
        return [float(len(data.train_y) / (data.n_classes * max(c, 1))) for c in counts]
    unknown = sorted(set(spec.class_weight) - set(data.classes))
    if unknown:
        raise SpecError(
            f"train.class_weight: {unknown} are not classes of the target "
            f"(classes: {', '.join(data.classes)})"
        )
    return [float(spec.class_weight.get(name, 1.0)) for name in data.classes]


def _lr_factor(spec: TrainSpec, epoch: int) -> float:
    """Learning-rate multiplier for ``epoch`` (0-based): warm-up, then the schedule."""
    s = spec.schedule
    if epoch < s.warmup_epochs:
        return (epoch + 1) / (s.warmup_epochs + 1)
    after = epoch - s.warmup_epochs
    if s.kind == "cosine":
        span = max(1, spec.max_epochs - s.warmup_epochs)
        floor = s.min_lr / spec.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(after, span) / span))
    if s.kind == "step":
        return float(s.gamma ** (after // s.step_size))
    return 1.0


def _optimizer(spec: TrainSpec, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if spec.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
        )
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)


def _target(y: Tensor, loss: nn.Module, model: MlcycleNet) -> Tensor:
    if isinstance(loss, nn.BCEWithLogitsLoss):
        return y.to(torch.float32)
    if model.task == "regression":
        return (y - model.target_mean) / model.target_std
    return y


def _predicted(raw: Tensor, out: Tensor) -> None:
    """Predicted class indices of a batch of logits, written into ``out``."""
    if raw.shape[-1] == 1:  # one logit (BCE): positive when above 0
        torch.gt(raw.squeeze(-1), 0, out=out)
    else:
        torch.argmax(raw, dim=1, out=out)


def _head(raw: Tensor, loss: nn.Module) -> Tensor:
    return (
        raw.squeeze(-1) if raw.shape[-1] == 1 and not isinstance(loss, nn.CrossEntropyLoss) else raw
    )


@torch.no_grad()
def predict(model: MlcycleNet, x: Encoded, device: torch.device, batch: int = 4096) -> Tensor:
    """Probabilities (classification) or values (regression) for every row, on the CPU."""
    model.eval()
    inputs = _tensors(x, device)
    parts = []
    for start in range(0, len(x), batch):
        index = torch.arange(start, min(start + batch, len(x)), device=device)
        parts.append(model.outputs(model(**_take(inputs, index))).float().cpu())
    return torch.cat(parts) if parts else torch.zeros(0)


def _family(task: str) -> Literal["classification", "regression"]:
    return "regression" if task == "regression" else "classification"


def val_metrics(
    task: str,
    y: np.ndarray[Any, Any],
    out: np.ndarray[Any, Any],
    classes: tuple[str, ...] = (),
    names: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Validation metrics of one epoch, by evaluation's metric table.

    ``names`` defaults to :data:`EPOCH_METRICS`; a metric the rows leave
    undefined (R² of a constant target) is left out rather than recorded as
    a number it is not.
    """
    family = _family(task)
    wanted = EPOCH_METRICS[family] if names is None else names
    if family == "classification" and not classes:
        classes = tuple(str(i) for i in range(out.shape[1]))
    values = point_metrics(task, y, out, classes or None, names=wanted)
    return {name: value for name, value in values.items() if value is not None}


def _check_stopping_metric(name: str, data: TrainData) -> bool:
    """Whether ``name`` is minimised; raise SpecError/DataError if it cannot steer training."""
    family = _family(data.task)
    if name == "loss":
        return True
    allowed = ("loss", *metric_names(family))
    if name not in allowed[1:]:
        raise SpecError(
            f"train.early_stopping.metric: {name!r} is not one of {', '.join(allowed)} "
            f"for a {data.task} task"
        )
    # Whether a metric is defined depends on the validation labels only: ask once, up front.
    y = data.val_y
    if family == "regression":
        probe = val_metrics(data.task, y, np.zeros(len(y)), names=(name,))
    else:
        k = max(data.n_classes, 2)
        uniform = np.full((len(y), k), 1.0 / k)
        probe = val_metrics(data.task, y, uniform, data.classes, names=(name,))
    if name not in probe:
        raise DataError(
            f"train.early_stopping.metric: {name!r} is undefined on the "
            f"{len(y)} validation rows (e.g. one class only, or a constant target); "
            "stop on 'loss' or another metric"
        )
    return not metric(name).higher_is_better


@torch.no_grad()
def _validate(
    model: MlcycleNet,
    loss_fn: nn.Module,
    x: dict[str, Tensor],
    y: Tensor,
    data: TrainData,
    names: tuple[str, ...],
) -> dict[str, float]:
    model.eval()
    total, outs = 0.0, []
    n = len(y)
    for start in range(0, n, 4096):
        index = torch.arange(start, min(start + 4096, n), device=y.device)
        raw = model(**_take(x, index))
        total += float(loss_fn(_head(raw, loss_fn), _target(y[index], loss_fn, model))) * len(index)
        outs.append(model.outputs(raw).float().cpu())
    metrics = val_metrics(data.task, data.val_y, torch.cat(outs).numpy(), data.classes, names)
    return {"loss": total / max(n, 1), **metrics}


def _adversary(
    spec: TrainSpec, model: MlcycleNet, data: TrainData, loss_fn: nn.Module
) -> Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]] | None:
    """What replaces part of each batch by its attacked version (``spec.adversarial``), or None.

    The attack climbs the training loss itself (class weights included) in
    float32; PGD's random start comes from torch's global generator on the
    CPU, which checkpoints keep, so a resumed run draws what an unbroken one does.

    Raises:
        SpecError: the model has no input an attack can move (only categorical ones).
    """
    adv = spec.adversarial
    if adv.attack is None:
        return None
    budget = AttackBudget.of(model.preprocess.layout, data.train_x.image)
    if not budget.movable:
        raise SpecError(
            f"train.adversarial.attack: {adv.attack!r} needs a numeric or image input to "
            "perturb; this model has only categorical or boolean ones (set it to null)"
        )
    budget = budget.to(model.target_mean.device)

    def loss(raw: Tensor, y: Tensor) -> Tensor:
        return loss_fn(_head(raw, loss_fn), _target(y, loss_fn, model))  # type: ignore[no-any-return]

    def attacked(xb: dict[str, Tensor], yb: Tensor) -> dict[str, Tensor]:
        k = max(1, round(adv.ratio * len(yb)))
        head = {name: value[:k] for name, value in xb.items()}
        if adv.attack == "fgsm":
            moved = fgsm(model, head, yb[:k], budget, eps=adv.eps, loss=loss)
        else:
            moved = pgd(
                model,
                head,
                yb[:k],
                budget,
                eps=adv.eps,
                steps=adv.steps,
                generator=torch.default_generator,
                loss=loss,
            )
        return {
            name: torch.cat([moved[name], value[k:]]) if k < len(yb) else moved[name]
            for name, value in xb.items()
        }

    return attacked


def fit(
    spec: TrainSpec,
    model: MlcycleNet,
    data: TrainData,
    *,
    device: torch.device,
    resume: Checkpoint | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    heartbeat: Callable[[], None] | None = None,
    teacher: np.ndarray[Any, Any] | None = None,
    sample_weight: np.ndarray[Any, Any] | None = None,
    replicas: Replicas | None = None,
) -> FitResult:
    """Train ``model`` on ``data.train_*`` and stop on ``data.val_*``; return the best model.

    The model must have been built and initialised (``torch.manual_seed`` first)
    by the caller; ``fit`` seeds the batch order and dropout from ``spec.seed``.
    ``heartbeat`` is called after every step, to say the process is alive
    (it must be cheap; :meth:`ActiveRun.heartbeat` writes at most once a second).
    ``teacher`` holds a teacher's logits for every training row: the loss then
    distils them (``spec.distill``: temperature and alpha). With
    ``spec.adversarial.attack`` set, the first ``ratio`` of each batch is
    replaced by its FGSM or PGD version before the forward pass (the recorded
    training accuracy is then that of the mixed batches). ``sample_weight``
    (one non-negative number per training row) draws each epoch's rows with
    probability proportional to it, with replacement, as the ``balanced``
    sampler does (with it, the two weights multiply): in expectation the loss
    is the weighted one, which is what a reductions approach to fairness
    (Fairlearn's ``ExponentiatedGradient``, ``GridSearch``) asks of an estimator.
    With ``replicas``, this process is one of several data-parallel replicas
    (:class:`Replicas`): the recorded training loss and accuracy are those of
    all the rows, summed over the replicas.
    """
    # -- set up: loss, optimiser, schedule, generators --------------------------------
    metric = spec.early_stopping.metric
    minimise = _check_stopping_metric(metric, data)
    epoch_metrics: tuple[str, ...] = EPOCH_METRICS[_family(data.task)]
    if metric != "loss" and metric not in epoch_metrics:
        epoch_metrics = (*epoch_metrics, metric)
    model.to(device)
    loss_fn = _loss_fn(spec, data, device)
    loss_fn.to(device)
    optimizer = _optimizer(spec, model)
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min" if minimise else "max",
            factor=spec.schedule.gamma,
            patience=spec.schedule.patience,
            min_lr=spec.schedule.min_lr,
        )
        if spec.schedule.kind == "plateau"
        else None
    )
    shuffle = torch.Generator().manual_seed(spec.seed)
    torch.manual_seed(spec.seed)
    amp = spec.mixed_precision and device.type == "cuda"

    def autocast() -> AbstractContextManager[Any]:
        if amp:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return nullcontext()

    train_x, val_x = _tensors(data.train_x, device), _tensors(data.val_x, device)
    train_y = torch.from_numpy(data.train_y).to(device)
    val_y = torch.from_numpy(data.val_y).to(device)
    soft = None
    if teacher is not None:
        # The teacher's answers at temperature T, as log-probabilities, once for all epochs.
        temperature = spec.distill.temperature
        soft = torch.log_softmax(torch.from_numpy(teacher).float() / temperature, dim=1).to(device)
    adversary = _adversary(spec, model, data, loss_fn)
    n = len(train_y)
    classify = data.task != "regression"
    preds = torch.empty(n, dtype=torch.long, device=device)
    sample_weights = None
    if spec.sampler == "balanced" and data.task != "regression":
        counts = np.bincount(data.train_y, minlength=data.n_classes)
        sample_weights = torch.from_numpy(1.0 / np.maximum(counts, 1)[data.train_y])
    if sample_weight is not None:
        given = np.array(sample_weight, dtype=np.float64)  # a copy torch may write
        if given.shape != (len(data.train_y),) or not np.isfinite(given).all():
            raise DataError(
                f"sample_weight: expected {len(data.train_y)} finite weights (one per training "
                f"row), got shape {list(given.shape)}"
            )
        if (given < 0).any() or given.sum() <= 0:
            raise DataError("sample_weight: weights must be >= 0 and not all zero")
        weights = torch.from_numpy(given)
        sample_weights = weights if sample_weights is None else sample_weights * weights

    start_epoch, best_value, best_epoch, bad_epochs = 0, math.inf, -1, 0
    history: list[dict[str, float]] = []
    best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if resume is not None:
        model.load_state_dict(resume.weights)
        optimizer.load_state_dict(resume.optimizer)
        best_weights = {
            k: v.clone()
            for k, v in (
                resume.weights if resume.state.get("best_is_current") else resume.best_weights
            ).items()
        }
        torch.set_rng_state(resume.rng["torch"])
        shuffle.set_state(resume.rng["shuffle"])
        if plateau is not None:
            plateau.load_state_dict(resume.state["plateau"])
        start_epoch = resume.epoch + 1
        best_value, best_epoch = resume.state["best_value"], resume.state["best_epoch"]
        bad_epochs, history = resume.state["bad_epochs"], resume.state["history"]
    # Replicas run the same steps: the wrapped module averages their gradients.
    forward: nn.Module = model if replicas is None else replicas.wrap(model)

    started = time.perf_counter()
    samples = 0
    stopped_early = False
    epoch = start_epoch - 1
    for epoch in range(start_epoch, spec.max_epochs):
        if plateau is None or epoch < spec.schedule.warmup_epochs:
            for group in optimizer.param_groups:
                group["lr"] = spec.lr * _lr_factor(spec, epoch)

        # -- one pass over the training rows --------------------------------------------
        model.train()
        if replicas is not None:
            # Each replica draws dropout masks of its own, from a seed of the epoch: the
            # same masks whether the run was resumed or not (a checkpoint holds replica 0's
            # generator only).
            torch.manual_seed(spec.seed + 7919 * (epoch + 1) + 104729 * replicas.rank)
        if sample_weights is not None:
            order = torch.multinomial(sample_weights, n, replacement=True, generator=shuffle)
        else:
            order = torch.randperm(n, generator=shuffle)
        order = order.to(device)
        # Bookkeeping stays on the device until the epoch ends: no per-batch host syncs.
        loss_sum = torch.zeros((), device=device)
        rank, world = (0, 1) if replicas is None else (replicas.rank, replicas.world)
        if replicas is not None:
            preds.zero_()  # each replica predicts its own rows; the sum holds them all
        for start in range(0, n, spec.batch_size):
            index = order[start : start + spec.batch_size]
            if len(index) < world:  # a last batch too short to give every replica a row
                continue
            index = index[rank::world]
            xb, yb = _take(train_x, index), train_y[index]
            if adversary is not None:  # adversarial training: attacked rows replace clean ones
                xb = adversary(xb, yb)
            with autocast():
                raw = forward(**xb)  # forward
                loss = loss_fn(_head(raw, loss_fn).float(), _target(yb, loss_fn, model))
                if soft is not None:  # distillation: match the teacher's softened answers
                    t, a = spec.distill.temperature, spec.distill.alpha
                    student = torch.log_softmax(raw.float() / t, dim=1)
                    kd = nn.functional.kl_div(
                        student, soft[index], log_target=True, reduction="batchmean"
                    )
                    loss = a * t * t * kd + (1 - a) * loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # backward
            if spec.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
            optimizer.step()  # step
            if heartbeat is not None:
                heartbeat()
            loss_sum += loss.detach() * len(index)
            if classify and replicas is None:
                _predicted(raw.detach(), preds[start : start + len(index)])
            elif classify:
                mine = torch.empty(len(index), dtype=torch.long, device=device)
                _predicted(raw.detach(), mine)
                preds[start + rank : start + rank + len(index) * world : world] = mine
        samples += n
        if replicas is not None:
            replicas.sum(loss_sum)
            if classify:
                replicas.sum(preds)

        # -- validate, record, decide whether to stop --------------------------------------
        val = _validate(model, loss_fn, val_x, val_y, data, epoch_metrics)
        row = {"train_loss": float(loss_sum) / n, "lr": optimizer.param_groups[0]["lr"]}
        if classify:
            seen = label_metrics(
                data.train_y[order.cpu().numpy()],
                preds.cpu().numpy(),
                max(data.n_classes, 2),
                ["accuracy"],
            )
            row["train_accuracy"] = float(seen["accuracy"] or 0.0)
        row |= {f"val_{k}": v for k, v in val.items()}
        history.append(row)
        value = val[metric] if minimise else -val[metric]
        improved = value < best_value - spec.early_stopping.min_delta
        if improved:
            best_value, best_epoch, bad_epochs = value, epoch, 0
            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if plateau is not None and epoch >= spec.schedule.warmup_epochs:
            plateau.step(val[metric])
        stop = bad_epochs > spec.early_stopping.patience
        if replicas is not None:  # identical on every replica; replica 0 decides all the same
            stop = replicas.leaders(stop)
        if on_epoch is not None:
            state = {
                "best_value": best_value,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "history": history,
                "plateau": plateau.state_dict() if plateau is not None else None,
            }
            rng = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
            # When this epoch is the best, its weights are not stored twice.
            state["best_is_current"] = improved
            checkpoint = Checkpoint(
                epoch,
                model.state_dict(),
                {} if improved else best_weights,
                optimizer.state_dict(),
                rng,
                state,
            )
            on_epoch(EpochReport(epoch, row, improved, checkpoint))
        if stop:
            stopped_early = True
            break

    # -- the best epoch's weights are the model ----------------------------------------
    model.load_state_dict(best_weights)
    return FitResult(
        model=model,
        best_epoch=best_epoch,
        best_value=best_value if minimise else -best_value,
        epochs_run=epoch + 1,
        stopped_early=stopped_early,
        history=history,
        train_seconds=time.perf_counter() - started,
        samples_seen=samples,
        device=str(device),
    )
