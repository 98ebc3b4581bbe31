"""The commented ``mlcycle.yaml`` that ``mlcycle init`` writes, generated from the spec's models.

Every field of every section of :class:`~mlcycle.spec.Spec` is written at its
default with a comment: a one-line note (the field's ``description``, else
:data:`_NOTES`, else its class docstring's ``Attributes:`` entry) and what the
type allows (a ``Literal``'s choices, a registry's names, a bound). Walking the
models means a field added to ``spec.py`` shows up here without anyone
remembering to: the template cannot drift from the parser.

A mapping of models (``data.datasets``, ``tune.space``, ``monitor.columns``,
``loop.gate.audit``) and an optional model (``loop.retrain.tune``) are written
empty or null, followed by an example of every field of their value, as
comment lines indented by three spaces after ``#`` (valid YAML once that
prefix is removed; a test parses each).

Example:
    >>> text = spec_template("demo")
    >>> "  lr: 0.001" in text and "  name: demo" in text
    True
"""

from __future__ import annotations

import re
import types
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mlcycle.plugins import (
    ARTIFACT_STORES,
    DRIFT_TESTS,
    EXECUTORS,
    MODEL_KINDS,
    Registry,
)
from mlcycle.spec import ProjectSpec, Spec

__all__ = ["EXAMPLE_PREFIX", "spec_template"]

# An example line is a comment whose text starts with three spaces (prose has one).
EXAMPLE_PREFIX = "#   "

_HEADER = """\
# mlcycle project spec, written by `mlcycle init`: every section and field at its
# default, so this file is also the reference. Every section is optional: delete
# what you do not change and mlcycle infers the rest. Validated when the project
# is opened: an error names the field, the value and what is allowed.
"""

# One-line header per top-level section (else the section's class docstring).
_SECTIONS = {
    "project": "Who the project is.",
    "store": (
        "Metadata store: SQLite at .mlcycle/mlcycle.db by default. For a team, a\n"
        "PostgreSQL URL (or set MLCYCLE_STORE_URL), e.g.\n"
        "  url: postgresql+psycopg://user@db.example.com:5432/mlcycle"
    ),
    "artifacts": "Artifact bytes: .mlcycle/artifacts by default; any fsspec URL (s3://bucket/prefix).",
    "data": "Datasets: overrides of what mlcycle infers, and data-wide checks.",
    "train": "Training (mlcycle train): the model, the loss, the optimiser and when to stop.",
    "evaluate": "Evaluation of a trained model on its held-out test split.",
    "tune": (
        "Hyper-parameter tuning (mlcycle tune): an Optuna study over fields of train:,\n"
        "each trial a run of its own; the best one registers like any run."
    ),
    "monitor": "Monitoring (mlcycle monitor): drift, out-of-distribution rows, performance, fairness.",
    "loop": "The closed loop (mlcycle loop): triggers, retraining data, the gate and the rollout.",
}

# One-line notes per field, keyed by "ClassName.field", for fields without a
# description. A field missing here still gets a comment (what its type allows).
_NOTES = {
    "ProjectSpec.name": "the project's name: letters, digits, '_', '-', '.'",
    "StoreSpec.url": "SQLAlchemy URL of the metadata store; null: SQLite in .mlcycle/",
    "ArtifactsSpec.uri": "folder or fsspec URL of artifact bytes; null: .mlcycle/artifacts",
    "ArtifactsSpec.backend": "the artifact store given uri",
    "DataSpec.datasets": "dataset name -> overrides of what mlcycle infers",
    "DataSpec.imbalance_ratio": "warn when the largest class has this many times the smallest's rows",
    "DataSpec.max_classes": "refuse a classification target with more classes",
    "DatasetSpec.source": "where to read it: sklearn:NAME, a CSV/Parquet file or folder",
    "DatasetSpec.target": "the column to predict",
    "DatasetSpec.task": "inferred from the target when null",
    "DatasetSpec.roles": "column -> role, overriding inference",
    "DatasetSpec.types": "column -> type, overriding inference",
    "DatasetSpec.split": "how versions of this dataset are cut into train/validation/test",
    "SplitSpec.method": "random (stratified for classification) or time (test on the newest rows)",
    "SplitSpec.validation": "share of rows for validation",
    "SplitSpec.test": "share of rows for test",
    "SplitSpec.seed": "seed of the random split",
    "SplitSpec.stratify": "keep class shares equal across splits (classification)",
    "SplitSpec.time_column": "the column a time split sorts by",
    "TrainSpec.data": "dataset to train on (NAME or NAME@VERSION); null: the only one",
    "TrainSpec.model": "which network to train",
    "TrainSpec.loss": "auto: cross-entropy / BCE for classification, MSE for regression",
    "TrainSpec.optimizer": "the optimiser",
    "TrainSpec.lr": "learning rate",
    "TrainSpec.momentum": "momentum (sgd only)",
    "TrainSpec.weight_decay": "L2 weight decay",
    "TrainSpec.batch_size": "rows per batch",
    "TrainSpec.max_epochs": "stop after this many epochs at the latest",
    "TrainSpec.early_stopping": "stop when the validation metric stops improving",
    "TrainSpec.schedule": "learning-rate schedule, stepped once per epoch",
    "TrainSpec.grad_clip": "clip the gradient norm to this; null: no clipping",
    "TrainSpec.class_weight": "none, balanced, or a mapping class -> weight (e.g. {'0': 1, '1': 5})",
    "TrainSpec.sampler": "shuffle, or balanced (oversample rare classes)",
    "TrainSpec.seed": "seed of initialisation, shuffling and dropout",
    "TrainSpec.device": "auto, cpu, cuda, cuda:N or mps",
    "TrainSpec.mixed_precision": "use bf16/fp16 autocast on a GPU",
    "TrainSpec.gap_warning": "warn when train and validation metrics differ by more",
    "TrainSpec.checkpoint_interval_s": "store the newest checkpoint at most this often (0: every epoch)",
    "TrainSpec.executor": "where training runs",
    "TrainSpec.workers": "data-parallel replicas (DDP, executor ray); 1: one process",
    "TrainSpec.distill": "knowledge distillation from a registered version (classification)",
    "TrainSpec.adversarial": "adversarial training on attacked copies of part of each batch",
    "ModelSpec.kind": "mlp for tables, cnn for images, gbm (LightGBM), auto, custom calls factory",
    "ModelSpec.hidden": "units of each hidden layer (mlp)",
    "ModelSpec.channels": "channels of each convolution (cnn)",
    "ModelSpec.dropout": "dropout after each hidden layer",
    "ModelSpec.activation": "activation after each hidden layer and convolution",
    "ModelSpec.categorical": "how categorical columns enter the network",
    "ModelSpec.embedding_dim": "embedding size per categorical column; null: from its cardinality",
    "ModelSpec.init": "weight initialisation",
    "ModelSpec.init_std": "standard deviation of init: normal",
    "ModelSpec.factory": "package.module:function returning the module (kind: custom)",
    "ModelSpec.options": "factory keywords, or a kind's settings (gbm: {num_leaves: 31, ...})",
    "EarlyStoppingSpec.metric": "loss or any metric of the task, on the validation rows",
    "EarlyStoppingSpec.patience": "epochs without improvement before stopping",
    "EarlyStoppingSpec.min_delta": "the least change that counts as an improvement",
    "ScheduleSpec.kind": "the schedule's shape",
    "ScheduleSpec.warmup_epochs": "epochs of linear warm-up first",
    "ScheduleSpec.step_size": "epochs between decays (step)",
    "ScheduleSpec.gamma": "decay factor (step, plateau)",
    "ScheduleSpec.patience": "epochs without improvement before a decay (plateau)",
    "ScheduleSpec.min_lr": "the lowest learning rate (cosine, plateau)",
    "DistillSpec.teacher": "registered version to learn from (NAME@VERSION); null: off",
    "DistillSpec.temperature": "softmax temperature of teacher and student",
    "DistillSpec.alpha": "weight of the distillation loss against the task's loss",
    "AdversarialSpec.attack": "fgsm or pgd; null: off",
    "AdversarialSpec.eps": "attack radius in training standard deviations / pixel range",
    "AdversarialSpec.steps": "PGD steps",
    "AdversarialSpec.ratio": "share of each batch replaced by attacked rows",
    "EvaluateSpec.bootstrap": "bootstrap resamples for confidence intervals (0: none)",
    "EvaluateSpec.threshold_metric": "tune the binary decision threshold for this; null: 0.5",
    "EvaluateSpec.slices": "columns to break the metrics down by (e.g. [sex, age])",
    "EvaluateSpec.bins": "quantile bins of a numeric slice column",
    "TuneSpec.objective": "metrics to optimise; empty: the task's headline (e.g. [accuracy, latency_ms])",
    "TuneSpec.sampler": "Optuna sampler",
    "TuneSpec.pruner": "auto: hyperband for one objective, none for several",
    "TuneSpec.n_trials": "stop after this many trials",
    "TuneSpec.timeout_s": "start no trial after this many seconds; null: no limit",
    "TuneSpec.target": "stop once a trial reaches this value; null: never",
    "TuneSpec.max_epochs": "cap each trial's epochs; null: train.max_epochs",
    "TuneSpec.seed": "seed of the sampler",
    "TuneSpec.workers": "processes sharing the study",
    "TuneSpec.storage": "auto: a journal in .mlcycle/studies, or the PostgreSQL store",
    "TuneSpec.deploy_batch": "rows per call when latency_ms is measured",
    "TuneSpec.space": "field of train -> range or choices; empty: the model kind's defaults",
    "ParamSpace.low": "lowest value of a range",
    "ParamSpace.high": "highest value of a range",
    "ParamSpace.log": "draw log-uniformly",
    "ParamSpace.step": "grid step of a range",
    "ParamSpace.choices": "a list of values instead of a range",
    "MonitorSpec.multiple_testing": "correction over the per-column drift tests",
    "MonitorSpec.drift_share": "dataset drift when this share of columns drifted",
    "MonitorSpec.defaults": "family of default drift tests: mlcycle or evidently's choice",
    "MonitorSpec.min_rows": "fewest rows for a verdict; null: each test's own minimum",
    "MonitorSpec.columns": "column -> its drift test, replacing the default",
    "MonitorSpec.timeline_windows": "windows shown in the drift timeline",
    "MonitorSpec.performance": "alert on a performance drop once labels arrive",
    "MonitorSpec.fairness": "bias over time for the sensitive columns",
    "MonitorSpec.ood": "out-of-distribution inputs",
    "MonitorSpec.attribution": "attribution drift: has the model's reasoning moved?",
    "MonitorSpec.webhook": "POST alerts to this http(s) URL; null: none",
    "MonitorSpec.webhook_timeout_s": "seconds to wait for the webhook",
    "DriftColumnSpec.test": "the drift test",
    "DriftColumnSpec.threshold": "the test's alert threshold; null: its default",
    "PerformanceSpec.metric": "null: accuracy (classification) or rmse (regression)",
    "PerformanceSpec.max_drop": "alert when the metric drops by more than this",
    "PerformanceSpec.bootstrap": "bootstrap resamples of the window's interval",
    "PerformanceSpec.confidence": "confidence of that interval",
    "PerformanceSpec.min_labels": "fewest labelled rows to judge a window",
    "FairnessSpec.sensitive": "columns to report on (e.g. [sex, race])",
    "FairnessSpec.positive_label": "the favourable class; null: the positive / last class",
    "FairnessSpec.max_difference": "absolute limit on a difference; null: off",
    "FairnessSpec.margin": "alert when a difference exceeds the reference's by more",
    "FairnessSpec.min_group_rows": "groups with fewer rows are left out of differences",
    "FairnessSpec.intersections": "also report all sensitive columns together",
    "FairnessSpec.confidence": "confidence of the bootstrap interval",
    "FairnessSpec.bootstrap": "bootstrap resamples",
    "FairnessSpec.seed": "seed of the bootstrap",
    "OODSpec.quantile": "reference score quantile above which a row is flagged",
    "OODSpec.max_share": "alert when more than this share of rows is flagged",
    "AttributionSpec.enabled": "compute attribution drift",
    "AttributionSpec.rows": "rows sampled on each side",
    "AttributionSpec.permutations": "Shapley permutations per row",
    "AttributionSpec.min_ndcg": "alert below this nDCG of the window's ranking",
    "AttributionSpec.min_rows": "fewest window rows for a verdict",
    "LoopSpec.model": "registered model the loop looks after; null: the only one",
    "LoopSpec.interval_s": "seconds between cycles",
    "LoopSpec.triggers": "what starts a retraining (null or false turns one off)",
    "LoopSpec.data": "what a challenger trains on; auto chooses by the trigger",
    "LoopSpec.window_rows": "rows of the newest window",
    "LoopSpec.min_labels": "fewest fresh labelled rows to retrain",
    "LoopSpec.holdout": "share of fresh rows held out to judge the gate",
    "LoopSpec.max_holdout_rows": "cap on held-out rows kept across cycles",
    "LoopSpec.retrain": "how the loop trains a challenger",
    "LoopSpec.gate": "when a challenger may replace the champion",
    "LoopSpec.rollout": "how a winning challenger reaches all traffic",
    "RetrainSpec.tune": "retune on the fresh data; null: the champion's parameters",
    "LoopTuneSpec.n_trials": "trials of the cycle's study",
    "LoopTuneSpec.timeout_s": "seconds of the cycle's study; null: tune.timeout_s",
    "TriggerSpec.drift": "retrain on dataset drift",
    "TriggerSpec.performance_drop": "retrain on a performance drop of the newest labels",
    "TriggerSpec.performance_rows": "newest labelled rows the performance trigger judges",
    "TriggerSpec.ood_share": "retrain when this share of rows is out of distribution",
    "TriggerSpec.attribution_drift": "retrain on attribution drift (monitor.attribution)",
    "TriggerSpec.interval": "retrain on a schedule (e.g. 12h, 7d); null: off",
    "TriggerSpec.new_labels": "retrain after this many new labelled rows; null: off",
    "TriggerSpec.keep_improving": "after a promotion, retrain as unseen labels reach this ratio",
    "GateSpec.metric": "metric to beat; null: the task's headline",
    "GateSpec.min_delta": "least improvement (relative for mae and rmse)",
    "GateSpec.require_ci": "the paired bootstrap interval must exclude zero",
    "GateSpec.confidence": "confidence of that interval",
    "GateSpec.bootstrap": "bootstrap resamples",
    "GateSpec.guards": "guard metric -> most it may get worse (e.g. {latency_ms: 5})",
    "GateSpec.audit": "KIND.FIGURE of mlcycle audit -> range it must fall in",
    "AuditLimitSpec.min": "lowest allowed value",
    "AuditLimitSpec.max": "highest allowed value",
    "RolloutSpec.mode": "canary, shadow first, or direct promotion",
    "RolloutSpec.steps": "canary traffic shares, in order",
    "RolloutSpec.bake_s": "least seconds at each step",
    "RolloutSpec.min_requests": "least requests at each step",
    "RolloutSpec.max_error_rate": "abort above this live error rate",
    "RolloutSpec.max_latency_ratio": "abort above this times the champion's median latency",
    "RolloutSpec.max_accuracy_drop": "abort when live accuracy drops more (with labels)",
    "RolloutSpec.timeout_s": "abort a rollout that takes longer",
}

# Examples of the value of a mapping of models or of an optional model, keyed
# like _NOTES. Fields left out are filled in at their defaults.
_EXAMPLES: dict[str, Any] = {
    "DataSpec.datasets": {
        "breast_cancer": {
            "source": "sklearn:breast_cancer",
            "target": "target",
            "task": "binary",
            "roles": {"patient_id": "id", "sex": "sensitive", "notes": "ignore"},
            "types": {"zip_code": "categorical"},
        }
    },
    "TuneSpec.space": {
        "lr": {"low": 0.0001, "high": 0.03, "log": True},
        "batch_size": {"choices": [32, 64, 128]},
        "model.activation": {"choices": ["relu", "gelu", "silu"]},
    },
    "MonitorSpec.columns": {"age": {"test": "ks", "threshold": 0.05}},
    "GateSpec.audit": {"fairness.DI": {"min": 0.8, "max": 1.25}},
    "RetrainSpec.tune": {"n_trials": 10, "timeout_s": 600},
}

# Registries whose names a string field must be one of.
_REGISTRIES: dict[str, Registry[Any]] = {
    "ArtifactsSpec.backend": ARTIFACT_STORES,
    "ModelSpec.kind": MODEL_KINDS,
    "TrainSpec.executor": EXECUTORS,
    "DriftColumnSpec.test": DRIFT_TESTS,
}

_BOUNDS = ((Gt, "gt", ">"), (Ge, "ge", ">="), (Lt, "lt", "<"), (Le, "le", "<="))
_WIDTH = 100
_EXAMPLE_WIDTH = 120
_ALIGN = 36
_ATTRIBUTE = re.compile(r"^\s{8}(\w+): (.+)$")


def spec_template(name: str) -> str:
    """The commented ``mlcycle.yaml`` of a new project named ``name``.

    Parsed by :func:`mlcycle.spec.parse_spec` it gives exactly the default
    :class:`~mlcycle.spec.Spec` with ``project.name`` set to ``name``.
    """
    spec = Spec(project=ProjectSpec(name=name))
    lines = [_HEADER.rstrip("\n")]
    values = spec.model_dump(mode="json")
    for field, info in Spec.model_fields.items():
        section = _model(info.annotation)
        assert section is not None, f"Spec.{field} is not a section"
        header = _SECTIONS.get(field) or _first_line(section)
        lines.append("")
        lines.extend(f"# {line}" if line else "#" for line in header.splitlines())
        lines.append(f"{field}:")
        lines.extend(_section(section, values[field], "  "))
    return "\n".join(_aligned(lines)) + "\n"


def _aligned(lines: list[str]) -> list[str]:
    """Line up the comments of sibling fields (a code column at most _ALIGN wide).

    Comment lines between siblings (choices, examples) stay in the group; a
    blank line, a section name or a change of indentation ends it.
    """
    out: list[str] = []
    group: list[tuple[str, str | None]] = []
    indent = -1

    def flush() -> None:
        codes = [code for code, comment in group if comment is not None]
        column = max((len(code) for code in codes if len(code) <= _ALIGN), default=0)
        out.extend(
            code if comment is None else f"{code.ljust(column)}  # {comment}"
            for code, comment in group
        )
        group.clear()

    for line in lines:
        code, sep, comment = line.partition("  # ")
        depth = len(line) - len(line.lstrip())
        is_comment = line.lstrip().startswith("#")
        if depth != indent or not (is_comment or sep):
            flush()
            indent = depth
        if is_comment:
            group.append((line, None))
        elif sep:
            group.append((code, comment))
        else:
            out.append(line)
    flush()
    return out


def _section(model: type[BaseModel], values: dict[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    for field, info in model.model_fields.items():
        key = f"{model.__name__}.{field}"
        comment = _comment(model, field, info)
        nested = _model(info.annotation)
        if nested is not None and get_origin(info.annotation) is None:
            lines.append(f"{indent}{field}:  # {comment}")
            lines.extend(_section(nested, values[field], indent + "  "))
            continue
        line = f"{indent}{field}: {_inline(values[field])}  # {comment}"
        allowed = _allowed(model, field, info)
        if len(line) > _WIDTH and "|" in allowed and comment.endswith(f" ({allowed})"):
            # A long list of choices goes on a line of its own, above.
            label = "" if allowed.startswith("registered") else "allowed: "
            lines.append(f"{indent}# {label}{allowed}")
            line = line.removesuffix(f" ({allowed})")
        if key in _EXAMPLES and nested is not None:
            lines.append(f"{line}; for example:")
            lines.extend(_example(field, info, nested, _EXAMPLES[key], indent))
        else:
            lines.append(line)
    return lines


def _example(
    field: str, info: FieldInfo, value_model: type[BaseModel], example: Any, indent: str
) -> list[str]:
    """Comment lines showing ``example`` with every field of ``value_model`` filled in."""
    if get_origin(info.annotation) is not dict:
        full = value_model.model_validate(example).model_dump(mode="json")
        return [f"{indent}{EXAMPLE_PREFIX}{field}: {_inline(full)}"]
    lines = [f"{indent}{EXAMPLE_PREFIX}{field}:"]
    for key, item in example.items():
        full = value_model.model_validate(item).model_dump(mode="json")
        line = f"{indent}{EXAMPLE_PREFIX}  {_inline(key)}: {_inline(full)}"
        if len(line) <= _EXAMPLE_WIDTH:
            lines.append(line)
            continue
        lines.append(f"{indent}{EXAMPLE_PREFIX}  {_inline(key)}:")
        for name, value in full.items():
            lines.append(f"{indent}{EXAMPLE_PREFIX}    {name}: {_inline(value)}")
    return lines


def _comment(model: type[BaseModel], field: str, info: FieldInfo) -> str:
    note = (
        info.description
        or _NOTES.get(f"{model.__name__}.{field}")
        or _attributes(model).get(field)
        or ""
    )
    allowed = _allowed(model, field, info)
    if note and allowed:
        return f"{note} ({allowed})"
    return note or allowed or f"{field.replace('_', ' ')} (see {model.__name__} in mlcycle.spec)"


def _allowed(model: type[BaseModel], field: str, info: FieldInfo) -> str:
    registry = _REGISTRIES.get(f"{model.__name__}.{field}")
    if registry is not None:
        return "registered: " + " | ".join(registry.names())
    choices = _literals(info.annotation)
    if choices:
        return " | ".join("null" if c is None else str(c) for c in choices)
    bounds = [
        f"{sign} {getattr(meta, attr)}"
        for meta in info.metadata
        for kind, attr, sign in _BOUNDS
        if isinstance(meta, kind)
    ]
    return ", ".join(bounds)


def _literals(annotation: Any) -> list[Any]:
    """The values a ``Literal`` (possibly inside ``X | None``) allows; [] for other types."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        found = [value for arg in args for value in _literals(arg)]
        if found and all(arg is type(None) or get_origin(arg) is Literal for arg in args):
            return found + ([None] if type(None) in args else [])
    return []


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds directly, as a mapping's value, or as an optional."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _inline(value: Any) -> str:
    text = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=1000, allow_unicode=True
    )
    return text.removesuffix("\n...\n").strip()


def _first_line(model: type[BaseModel] | None) -> str:
    doc = (model.__doc__ if model is not None else None) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _attributes(model: type[BaseModel]) -> dict[str, str]:
    """``name: text`` entries of the class docstring's ``Attributes:`` section (first lines)."""
    doc = model.__doc__ or ""
    if "Attributes:" not in doc:
        return {}
    section = doc.split("Attributes:", 1)[1]
    return {m.group(1): m.group(2) for m in map(_ATTRIBUTE.match, section.splitlines()) if m}
