"""Structured pruning of mlcycle's own zoo: fewer neurons and channels, a smaller graph.

An ``mlp`` with ``hidden`` (128, 64) whose narrowest units are cut IS an
``mlp`` with ``hidden`` (64, 32): the pruned network is rebuilt from a reduced
:class:`~mlcycle.spec.ModelSpec` by :func:`~mlcycle.train.build_model` and
given the surviving rows and columns of the original weights. So the pruned
run's ``model/model.json`` and ``model/weights.safetensors`` are those of an
ordinary training run, and loading, export to ONNX, the parity check,
registration and serving work unchanged; the ONNX graph really shrinks
(unlike masks, which leave dense kernels of zeros that run as slowly).

What is cut, per ``target``:

* ``neurons``: the hidden units of every hidden ``Linear`` (the MLP's layers,
  the CNN's one hidden layer after its convolutions);
* ``channels``: the output channels of every 3x3 convolution of a CNN, with
  the next convolution's input channels and the ``h*w`` flattened positions
  each channel feeds into the first ``Linear``;
* ``auto``: both for a CNN, neurons for an MLP.

The pruned network is fine-tuned with the run's own training spec (early
stopping on the validation rows, the best epoch kept) and recorded as a new
run, a child of the original, evaluated on the test rows exactly as a
training run is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from mlcycle.errors import ConflictError, NotFoundError, SpecError
from mlcycle.spec import EvaluateSpec, ModelSpec, TrainSpec
from mlcycle.train import (
    FeatureLayout,
    FitResult,
    MlcycleNet,
    build_model,
    fit,
    load_model,
    pick_device,
    predict,
)
from mlcycle.train._environment import environment
from mlcycle.train._loop import EpochReport, val_metrics
from mlcycle.train._progress import Pace, ProgressCallback
from mlcycle.train._run import (
    MODEL_CONFIG,
    MODEL_WEIGHTS,
    _finish,
    _prepare,
    _Prepared,
    _teacher,
)

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["PRUNABLE_KINDS", "PruneOutcome", "PruneStep", "Target", "prune_model", "prune_run"]

Target = Literal["auto", "neurons", "channels"]
TARGETS: tuple[str, ...] = ("auto", "neurons", "channels")
PRUNABLE_KINDS: tuple[str, ...] = ("mlp", "cnn")
CRITERION = "l1_in_x_l1_out"
# Iterative mode: the share of the remaining units each step removes, and a bound on steps.
STEP_RATIO = 0.25
MAX_STEPS = 12
FINE_TUNE_EPOCHS = 20


@dataclass(frozen=True)
class PruneStep:
    """One step of iterative pruning: the widths tried and the validation score after fine-tuning."""

    step: int
    hidden: tuple[int, ...]
    channels: tuple[int, ...]
    parameters: int
    val_score: float
    accepted: bool


@dataclass(frozen=True)
class PruneOutcome:
    """What pruning a run produced: the new run, and the figures before and after.

    ``test_before``/``test_after`` are the test-split metrics of the original
    and the pruned run (their summaries); ``val_before``/``val_after`` the
    ``val_metric`` (accuracy, or r2 for regression) on the validation rows,
    which is what iterative pruning decides on. ``sparsity`` is the share of
    zero weights for unstructured pruning (None when structured).
    """

    run_id: str
    parent_run_id: str
    structured: bool
    target: str
    criterion: str
    ratio: float | None
    max_drop: float | None
    widths_before: dict[str, tuple[int, ...]]
    widths_after: dict[str, tuple[int, ...]]
    parameters_before: int
    parameters_after: int
    test_before: dict[str, Any]
    test_after: dict[str, Any]
    val_metric: str
    val_before: float
    val_after: float
    steps: tuple[PruneStep, ...] = ()
    sparsity: float | None = None

    @property
    def accuracy_before(self) -> float | None:
        value = self.test_before.get("accuracy")
        return None if value is None else float(value)

    @property
    def accuracy_after(self) -> float | None:
        value = self.test_after.get("accuracy")
        return None if value is None else float(value)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _hidden_linears(model: MlcycleNet) -> list[tuple[str, nn.Linear]]:
    """The body's ``Linear`` layers, by state-dict prefix, the head last."""
    return [
        (f"body.{name}", module)
        for name, module in model.body.named_children()
        if isinstance(module, nn.Linear)
    ]


def _convs(model: MlcycleNet) -> list[tuple[str, nn.Conv2d]]:
    if model.conv is None:
        return []
    return [
        (f"conv.{name}", module)
        for name, module in model.conv.named_children()
        if isinstance(module, nn.Conv2d)
    ]


def _keep(scores: Tensor, ratio: float) -> Tensor:
    """Indices (ascending) of the top ``1 - ratio`` of ``scores``, at least one."""
    n = len(scores)
    k = max(1, math.floor(n * (1 - ratio) + 0.5))
    order = torch.argsort(scores, descending=True, stable=True)[:k]
    return order.sort().values


def _in_norm(weight: Tensor, bias: Tensor | None) -> Tensor:
    norm = weight.abs().flatten(1).sum(1)
    return norm + bias.abs() if bias is not None else norm


def _check_target(kind: str, target: str, where: str) -> tuple[bool, bool]:
    """Whether to cut (channels, neurons) for a model ``kind``; a one-line error if it cannot be."""
    if target not in TARGETS:
        raise SpecError(f"prune target: {target!r} is not one of {', '.join(TARGETS)}")
    if kind not in PRUNABLE_KINDS:
        raise SpecError(
            f"train.model.kind: {kind!r}{where} cannot be pruned; structured pruning knows "
            f"the kinds {', '.join(PRUNABLE_KINDS)}"
        )
    if target == "channels" and kind != "cnn":
        raise SpecError(
            f"prune target: 'channels' needs a cnn; {where.strip() or 'the model'} is a {kind!r} "
            "(allowed for it: auto, neurons)"
        )
    return (kind == "cnn" and target in ("auto", "channels"), target in ("auto", "neurons"))


@torch.no_grad()
def prune_model(
    model: MlcycleNet, spec: ModelSpec, *, ratio: float, target: Target = "auto"
) -> tuple[MlcycleNet, ModelSpec]:
    """The network with the weakest ``ratio`` of its units removed, and the spec it now has.

    Criterion (``l1_in_x_l1_out``): a unit (a hidden neuron, a conv channel)
    is scored by the L1 norm of its incoming weights and bias times the L1
    norm of its outgoing weights. For the activations of the zoo
    (``|act(z)| <= |z|``, max-pooling included) that product bounds how much
    the unit can add to the next layer per unit of input, so it ranks a unit
    that receives a lot but passes nothing on (or the reverse) as weak, which
    the incoming norm alone (Li et al. 2017's filter norm) would keep. A unit
    whose incoming weights and bias are all zero outputs ``act(0) = 0`` and
    scores 0: it goes first, and removing it changes no output.

    Each layer keeps ``round(n * (1 - ratio))`` units (at least one), chosen
    from the original weights; the surviving rows and columns are copied into
    a network built by :func:`~mlcycle.train.build_model` from the reduced
    spec, so preprocessing buffers and embeddings are carried unchanged. The
    model is left as it was.

    Example:
        >>> import torch
        >>> from mlcycle.spec import ModelSpec
        >>> from mlcycle.train import FeatureLayout, build_model
        >>> layout = FeatureLayout(("a", "b"), (), {}, None, None, (0.0, 0.0), (1.0, 1.0))
        >>> spec = ModelSpec(hidden=(8, 4))
        >>> small, reduced = prune_model(build_model(spec, layout, "multiclass", 3), spec, ratio=0.5)
        >>> reduced.hidden, small(numeric=torch.zeros(2, 2)).shape
        ((4, 2), torch.Size([2, 3]))

    Raises:
        SpecError: ``ratio`` outside (0, 1), an unknown target, a kind that
            cannot be pruned, or ``channels`` for a model without convolutions.
    """
    if not 0 < ratio < 1:
        raise SpecError(f"prune ratio: {ratio!r} is outside (0, 1) (the share of units to remove)")
    cut_channels, cut_neurons = _check_target(spec.kind, target, "")
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    linears = _hidden_linears(model)
    convs = _convs(model)
    first = linears[0][1]
    hidden = linears[:-1]
    if not (cut_channels and convs) and not (cut_neurons and hidden):
        raise SpecError(
            f"prune target: {target!r} finds nothing to cut in this {spec.kind} "
            f"(hidden {list(spec.hidden)}): it has no hidden layer"
        )

    # -- which units stay, scored on the original weights --------------------------------
    conv_keep: list[Tensor] = [torch.arange(c.out_channels) for _, c in convs]
    image_width = first.in_features - model.preprocess.tabular_width
    hw = image_width // convs[-1][1].out_channels if convs else 0
    if cut_channels:
        for i, (_, conv) in enumerate(convs):
            if i + 1 < len(convs):
                out = convs[i + 1][1].weight.abs().sum(dim=(0, 2, 3))
            else:
                out = first.weight[:, :image_width].abs().reshape(first.out_features, -1, hw)
                out = out.sum(dim=(0, 2))
            conv_keep[i] = _keep(_in_norm(conv.weight, conv.bias) * out, ratio)
    hidden_keep: list[Tensor] = [torch.arange(lin.out_features) for _, lin in hidden]
    if cut_neurons:
        for i, (_, lin) in enumerate(hidden):
            after = linears[i + 1][1]
            out = after.weight.abs().sum(dim=0)
            hidden_keep[i] = _keep(_in_norm(lin.weight, lin.bias) * out, ratio)

    # -- slice: each layer's outputs, and the next layer's inputs ---------------------------
    previous: Tensor | None = None
    for (prefix, _), keep in zip(convs, conv_keep, strict=True):
        w = weights[f"{prefix}.weight"][keep]
        weights[f"{prefix}.weight"] = w[:, previous] if previous is not None else w
        weights[f"{prefix}.bias"] = weights[f"{prefix}.bias"][keep]
        previous = keep
    columns: Tensor | None = None
    if previous is not None:  # channel c of the last conv is flattened to c*hw .. c*hw+hw-1
        pixels = (previous[:, None] * hw + torch.arange(hw)[None, :]).flatten()
        tabular = torch.arange(image_width, first.in_features)
        columns = torch.cat([pixels, tabular])
    for i, (prefix, _) in enumerate(linears):
        w = weights[f"{prefix}.weight"]
        if columns is not None:
            w = w[:, columns]
        if i < len(hidden):
            keep = hidden_keep[i]
            w = w[keep]
            weights[f"{prefix}.bias"] = weights[f"{prefix}.bias"][keep]
            columns = keep
        weights[f"{prefix}.weight"] = w

    # -- the smaller network, built from its spec ------------------------------------------
    widths = tuple(len(k) for k in hidden_keep)
    update: dict[str, Any] = {"hidden": widths + spec.hidden[len(widths) :]}
    if convs:
        update["channels"] = tuple(len(k) for k in conv_keep)
    reduced = ModelSpec.model_validate({**spec.model_dump(), **update})
    smaller = build_model(reduced, model.preprocess.layout, model.task, model.n_outputs)
    smaller.load_state_dict(weights)
    smaller.eval()
    return smaller, reduced


def _unstructured(model: MlcycleNet, ratio: float) -> list[tuple[nn.Module, str]]:
    """Mask the ``ratio`` smallest weights of every Linear and Conv (the masks stay while fine-tuning)."""
    pruned: list[tuple[nn.Module, str]] = []
    for module in (*model.body.modules(), *(model.conv.modules() if model.conv else ())):
        if isinstance(module, nn.Linear | nn.Conv2d):
            prune.l1_unstructured(module, "weight", amount=ratio)  # type: ignore[no-untyped-call]
            pruned.append((module, "weight"))
    return pruned


def _unmask(modules: list[tuple[nn.Module, str]]) -> float:
    """Make the masked weights permanent (plain tensors again); the share of them that are zero."""
    for module, name in modules:
        prune.remove(module, name)  # type: ignore[no-untyped-call]
    total = sum(getattr(m, name).numel() for m, name in modules)
    zeros = sum(int((getattr(m, name) == 0).sum()) for m, name in modules)
    return float(zeros / max(total, 1))


def _val_score(model: MlcycleNet, prepared: _Prepared, name: str, device: torch.device) -> float:
    data = prepared.data
    out = predict(model, data.val_x, device).numpy()
    return float(val_metrics(data.task, data.val_y, out, data.classes, names=(name,))[name])


def _fine_tune(
    spec: TrainSpec,
    model: MlcycleNet,
    prepared: _Prepared,
    device: torch.device,
    on_progress: ProgressCallback | None,
    teacher: Any,
) -> FitResult:
    pace = Pace(on_progress, spec.max_epochs, spec.early_stopping.metric) if on_progress else None

    def each_epoch(report: EpochReport) -> None:
        if pace is not None:
            pace(report)

    return fit(spec, model, prepared.data, device=device, on_epoch=each_epoch, teacher=teacher)


def _widths(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    if spec.kind == "cnn":
        return {"channels": spec.channels, "hidden": spec.hidden[:1]}
    return {"hidden": spec.hidden}


def prune_run(
    project: Project,
    run_id: str,
    *,
    ratio: float | None = None,
    max_drop: float | None = None,
    target: Target = "auto",
    structured: bool = True,
    fine_tune_epochs: int | None = None,
    on_progress: ProgressCallback | None = None,
    on_step: Callable[[PruneStep], None] | None = None,
) -> PruneOutcome:
    """Prune a finished run's model, fine-tune it, and record it as a new child run.

    Give either ``ratio`` (remove that share of every pruned layer's units in
    one cut, see :func:`prune_model`) or ``max_drop``: then each step removes
    :data:`STEP_RATIO` of the remaining units and fine-tunes, and pruning
    stops before the validation score (accuracy; r2 for regression) falls
    more than ``max_drop`` (0.01 = one point) below the original's; the last
    step within the limit is kept. The test split is never looked at to
    decide. Fine-tuning uses the run's recorded training spec with
    ``max_epochs = fine_tune_epochs`` (default ``min(max_epochs, 20)``),
    its distillation teacher included when it has one.

    The new run has ``parent`` = ``run_id``, tags ``compress: prune`` and
    ``pruned_from``, the reduced spec under ``params['train']`` and the
    pruning facts under ``params['prune']``; its model files, summary and
    test evaluation are written by the same code as a training run's, so it
    registers with :func:`mlcycle.workflow.register` like one.

    ``structured=False`` masks the smallest weights instead
    (``torch.nn.utils.prune.l1_unstructured``, made permanent after
    fine-tuning): the sparsity is reported, but the parameter count, the
    ONNX size and the speed of dense kernels do not change.

    Example:
        >>> import tempfile, mlcycle
        >>> from mlcycle.train import train
        >>> with mlcycle.Project.init(tempfile.mkdtemp(), name="demo") as project:
        ...     run = train(project, data="sklearn:iris", overrides={"max_epochs": 3}).run_id
        ...     outcome = prune_run(project, run, ratio=0.5, fine_tune_epochs=2)
        ...     outcome.widths_after, outcome.parameters_after < outcome.parameters_before
        ({'hidden': (64, 32)}, True)

    Raises:
        SpecError: ``ratio`` outside (0, 1), ``max_drop`` outside [0, 1), both
            or neither given, a kind that cannot be pruned, ``channels`` on an MLP.
        ConflictError: the run is not finished, or is not a training run; in
            iterative mode, the first step already drops more than ``max_drop``.
        NotFoundError: the run has no trained model.
    """
    if (ratio is None) == (max_drop is None):
        raise SpecError(
            "prune: give ratio (share of units to remove) or max_drop, not both/neither"
        )
    if ratio is not None and not 0 < ratio < 1:
        raise SpecError(f"prune ratio: {ratio!r} is outside (0, 1) (the share of units to remove)")
    if max_drop is not None and not 0 <= max_drop < 1:
        raise SpecError(f"prune max_drop: {max_drop!r} is outside [0, 1) (0.01 = one point)")
    if max_drop is not None and not structured:
        raise SpecError("prune max_drop: iterative pruning is structured only; give ratio")
    if fine_tune_epochs is not None and fine_tune_epochs < 1:
        raise SpecError(f"prune fine_tune_epochs: {fine_tune_epochs!r} must be at least 1")
    record = project.runs.get(run_id)
    if record.status != "finished":
        raise ConflictError(
            f"run {record.id} is {record.status}: only a finished run can be pruned"
        )
    if MODEL_WEIGHTS not in record.artifacts or MODEL_CONFIG not in record.artifacts:
        raise NotFoundError(f"run {record.id} has no trained model: it cannot be pruned")
    if "train" not in record.params or record.dataset_version_id is None:
        raise ConflictError(f"run {record.id} is not a training run: it cannot be pruned")
    tspec = TrainSpec.model_validate(record.params["train"])
    evaluate = EvaluateSpec.model_validate(record.params.get("evaluate", {}))
    original, config = load_model(project, record.id)
    model_spec = ModelSpec.model_validate(config["model"])
    _check_target(model_spec.kind, target, f" (run {record.id})")

    prepared = _prepare(project, project.store.get_dataset_version_by_id(record.dataset_version_id))
    # The network was built on the recorded layout: keep it (refitting gives the same one).
    prepared = dataclasses.replace(prepared, layout=FeatureLayout.from_dict(config["layout"]))
    device = pick_device(tspec.device)
    epochs = fine_tune_epochs or min(tspec.max_epochs, FINE_TUNE_EPOCHS)
    metric = "r2" if prepared.data.task == "regression" else "accuracy"
    val_before = _val_score(original, prepared, metric, device)
    parameters_before = _count(original)

    teacher = _teacher(project, tspec, prepared)  # a distilled student keeps its teacher

    def tune(net: MlcycleNet, spec: ModelSpec) -> tuple[FitResult, TrainSpec]:
        ft = TrainSpec.model_validate(
            {**tspec.model_dump(), "model": spec.model_dump(), "max_epochs": epochs}
        )
        return _fine_tune(ft, net, prepared, device, on_progress, teacher), ft

    steps: list[PruneStep] = []
    sparsity: float | None = None
    if not structured:
        assert ratio is not None
        masked, _ = load_model(project, record.id)
        modules = _unstructured(masked, ratio)
        result, ft_spec = tune(masked, model_spec)
        sparsity = _unmask(modules)
        final_spec = model_spec
    elif ratio is not None:
        smaller, final_spec = prune_model(original, model_spec, ratio=ratio, target=target)
        result, ft_spec = tune(smaller, final_spec)
    else:
        assert max_drop is not None
        current, current_spec = original, model_spec
        kept: tuple[FitResult, TrainSpec, ModelSpec] | None = None
        for step in range(1, MAX_STEPS + 1):
            candidate, candidate_spec = prune_model(
                current, current_spec, ratio=STEP_RATIO, target=target
            )
            if _widths(candidate_spec) == _widths(current_spec):
                break  # every layer is down to what a step cannot cut further
            fitted, ft = tune(candidate, candidate_spec)
            score = _val_score(fitted.model, prepared, metric, device)
            accepted = val_before - score <= max_drop
            widths = _widths(candidate_spec)
            report = PruneStep(
                step,
                widths["hidden"],
                widths.get("channels", ()),
                _count(fitted.model),
                score,
                accepted,
            )
            steps.append(report)
            if on_step is not None:
                on_step(report)
            if not accepted:
                break
            kept = (fitted, ft, candidate_spec)
            current, current_spec = fitted.model, candidate_spec
        if kept is None:
            raise ConflictError(
                f"prune max_drop: the first step (removing {STEP_RATIO:.0%} of the units) "
                f"already drops validation {metric} by {val_before - steps[0].val_score:.4f} "
                f"> {max_drop}; nothing recorded"
                if steps
                else "prune max_drop: nothing can be removed from this model"
            )
        result, ft_spec, final_spec = kept

    # -- record: a training run's files and summary, under the original -------------------
    val_after = _val_score(result.model, prepared, metric, device)
    facts = {
        "ratio": ratio,
        "max_drop": max_drop,
        "target": target,
        "structured": structured,
        "criterion": CRITERION if structured else "l1_unstructured",
        "val_metric": metric,
        "val_before": val_before,
        "val_after": val_after,
        "parameters_before": parameters_before,
        "parameters_after": _count(result.model),
        "widths_before": _widths(model_spec),
        "widths_after": _widths(final_spec),
        "fine_tune_epochs": epochs,
        "steps": [dataclasses.asdict(s) for s in steps],
        "sparsity": sparsity,
    }
    run = project.runs.start(
        f"{record.name}-pruned",
        params={
            "train": ft_spec.model_dump(mode="json"),
            "evaluate": evaluate.model_dump(mode="json"),
            "dataset": prepared.version.ref,
            "split": prepared.split_counts,
            "prune": facts,
            "environment": environment(project.root),
        },
        dataset=prepared.version.ref,
        parent=record.id,
        tags={
            "model": model_spec.kind,
            "task": prepared.data.task,
            "compress": "prune",
            "pruned_from": record.id,
        },
    )
    with run:
        run.heartbeat()
        run.log_metrics_rows(list(enumerate(result.history)))
        outcome = _finish(project, run, ft_spec, evaluate, prepared, result)
    return PruneOutcome(
        run_id=run.id,
        parent_run_id=record.id,
        structured=structured,
        target=target,
        criterion=str(facts["criterion"]),
        ratio=ratio,
        max_drop=max_drop,
        widths_before=_widths(model_spec),
        widths_after=_widths(final_spec),
        parameters_before=parameters_before,
        parameters_after=int(outcome.summary["parameters"]),
        test_before=dict(record.summary.get("test", {})),
        test_after=dict(outcome.test),
        val_metric=metric,
        val_before=val_before,
        val_after=val_after,
        steps=tuple(steps),
        sparsity=sparsity,
    )
