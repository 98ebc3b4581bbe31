"""The project spec: Pydantic models of ``mlcycle.yaml``.

The spec is validated once when a project is opened and is immutable after
that. A section exists only for a stage that does something; later stages add
theirs. Every validation error becomes a :class:`~mlcycle.errors.SpecError`
whose message names the field path, the bad value and what is allowed::

    data.datasets.cancer.split.test: 1.5 is not < 1

Example:
    >>> spec = Spec.model_validate({"project": {"name": "demo"}})
    >>> spec.data.datasets
    {}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlcycle.errors import SpecError
from mlcycle.plugins import (
    ARTIFACT_STORES,
    DATA_SOURCES,
    DRIFT_TESTS,
    EXECUTORS,
    METADATA_BACKENDS,
    MODEL_KINDS,
    TRIGGERS,
)

__all__ = [
    "AdversarialSpec",
    "ArtifactsSpec",
    "ColumnRole",
    "ColumnType",
    "DataSpec",
    "DatasetSpec",
    "DriftColumnSpec",
    "EarlyStoppingSpec",
    "EvaluateSpec",
    "FairnessSpec",
    "GateSpec",
    "GbmOptions",
    "LoopSpec",
    "MetricName",
    "ModelSpec",
    "MonitorSpec",
    "OODSpec",
    "PerformanceSpec",
    "ProjectSpec",
    "RolloutSpec",
    "ScheduleSpec",
    "Spec",
    "SplitSpec",
    "StoreSpec",
    "Task",
    "TrainSpec",
    "TriggerSpec",
    "format_validation_error",
    "load_spec",
    "parse_spec",
]

Task = Literal["binary", "multiclass", "regression"]
ColumnRole = Literal["feature", "target", "sensitive", "id", "timestamp", "ignore"]
ColumnType = Literal["numeric", "categorical", "boolean", "image"]
Fraction = Annotated[float, Field(ge=0, lt=1)]
# The names of the metric table (``mlcycle.evaluate.METRICS``), which the spec
# cannot import (every stage sits above it); a test pins the two together.
# Which of them a task accepts is checked where the task is known (training,
# the gate, the performance window), naming the field and the task's metrics.
MetricName = Literal[
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "ece",
    "mae",
    "rmse",
    "r2",
    "mape",
]

METRIC_NAMES: tuple[str, ...] = get_args(MetricName)

_SOURCE_KIND = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProjectSpec(_Frozen):
    """Who the project is."""

    name: str = Field(default="mlcycle-project", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")


class StoreSpec(_Frozen):
    """Where metadata lives.

    ``url`` is a SQLAlchemy URL; ``None`` means SQLite at ``.mlcycle/mlcycle.db``.
    The environment variable ``MLCYCLE_STORE_URL`` overrides it.
    """

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme = url.split("://", 1)[0].split("+", 1)[0]
        scheme = "postgresql" if scheme == "postgres" else scheme
        if "://" not in url or scheme not in METADATA_BACKENDS:
            schemes = ", ".join(f"{name}://" for name in METADATA_BACKENDS.names())
            raise ValueError(f"expected a URL of a registered metadata backend ({schemes})")
        return url


class ArtifactsSpec(_Frozen):
    """Where artifact bytes live: a folder or an fsspec URL (``s3://bucket/prefix``).

    ``None`` means ``.mlcycle/artifacts`` inside the project. ``backend`` names
    the artifact store in :data:`mlcycle.plugins.ARTIFACT_STORES` that is
    given ``uri`` (``fsspec``: any folder or URL fsspec reads) and ``options``
    as keyword arguments (for ``s3://``: ``endpoint_url``, ``client_kwargs:
    {region_name: ...}``; s3fs's options). Credentials, region and endpoint
    are best left to the usual AWS variables (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``)
    or profile, which s3fs reads: a spec is often committed.
    """

    uri: str | None = None
    backend: str = "fsspec"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, name: str) -> str:
        return ARTIFACT_STORES.check(name)


class SplitSpec(_Frozen):
    """How a dataset version is cut into train, validation and test rows.

    ``random`` shuffles by ``seed`` (stratified by the target for classification);
    ``time`` sorts by ``time_column`` and tests on the most recent rows.
    """

    method: Literal["random", "time"] = "random"
    validation: Fraction = 0.15
    test: Fraction = 0.15
    seed: int = Field(default=0, ge=0)
    stratify: bool = True
    time_column: str | None = None

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> SplitSpec:
        if self.validation + self.test >= 1:
            raise ValueError(
                f"validation + test is {self.validation + self.test:g}: "
                "expected < 1 so that rows are left for training"
            )
        return self

    @property
    def train(self) -> float:
        """The share of rows left for training."""
        return 1.0 - self.validation - self.test


class DatasetSpec(_Frozen):
    """Overrides for what mlcycle infers about one dataset.

    Attributes:
        source: where to read it (``sklearn:iris``, a CSV/Parquet file or folder).
        target: the column to predict.
        task: the learning task; inferred from the target when absent.
        roles: column name → role, overriding inference.
        types: column name → type, overriding inference.
        split: how versions of this dataset are split.
    """

    source: str | None = None
    target: str | None = None
    task: Task | None = None
    roles: dict[str, ColumnRole] = Field(default_factory=dict)
    types: dict[str, ColumnType] = Field(default_factory=dict)
    split: SplitSpec = Field(default_factory=SplitSpec)

    @field_validator("source")
    @classmethod
    def _registered_source(cls, source: str | None) -> str | None:
        # KIND:REST names a registered kind of source; a path has no such prefix
        # (a one-letter one is a Windows drive).
        match = _SOURCE_KIND.match(source or "")
        if match and match.group(1).lower() not in DATA_SOURCES:
            raise ValueError(
                f"unknown kind of data source {match.group(1)!r}; "
                f"registered: {', '.join(DATA_SOURCES.names())} (or a file or folder path)"
            )
        return source

    @model_validator(mode="after")
    def _one_target(self) -> DatasetSpec:
        targets = [c for c, r in self.roles.items() if r == "target"]
        if len(targets) > 1:
            raise ValueError(f"roles name {len(targets)} targets {targets}: expected at most one")
        if targets and self.target is not None and targets[0] != self.target:
            raise ValueError(f"target is {self.target!r} but roles make {targets[0]!r} the target")
        return self


class DataSpec(_Frozen):
    """Datasets the project knows, and data-wide settings.

    Attributes:
        datasets: dataset name → its overrides.
        imbalance_ratio: warn when the largest class has at least this many
            times the rows of the smallest.
        max_classes: refuse a classification target with more classes (a
            target with more than half as many classes as rows is refused too).
    """

    datasets: dict[str, DatasetSpec] = Field(default_factory=dict)
    imbalance_ratio: float = Field(default=3.0, gt=1)
    max_classes: int = Field(default=1000, ge=3)


class GbmOptions(_Frozen):
    """``train.model.options`` of the ``gbm`` kind: LightGBM's settings, by LightGBM's names.

    The defaults are LightGBM's but three: ``learning_rate`` 0.05 (not 0.1)
    with up to ``n_estimators`` 1000 rounds (not 100), early stopping
    choosing how many, and ``min_data_per_group`` 20 (not 100), so that a
    category of a few thousand rows can have a split of its own.
    At most ``n_estimators`` boosting rounds; training stops when the
    validation metric (``train.early_stopping.metric``) has not improved by
    ``train.early_stopping.min_delta`` for ``early_stopping_rounds`` rounds,
    and the best round's trees are the model. ``monotone`` maps a numeric
    feature to ``1`` (the prediction never falls as it grows) or ``-1``
    (never rises). ``num_threads`` 0: one per 500,000 values of the training
    matrix, at most the process's cores and 8 (threads cost more than they
    give on small tables).
    ``train.class_weight`` and ``train.seed`` apply as for every kind.

    Example:
        >>> GbmOptions.model_validate({"num_leaves": 15}).num_leaves
        15
    """

    n_estimators: int = Field(default=1000, gt=0)
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=31, ge=2)
    max_depth: int = Field(default=-1, ge=-1)
    min_child_samples: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_freq: int = Field(default=0, ge=0)
    lambda_l1: float = Field(default=0.0, ge=0)
    lambda_l2: float = Field(default=0.0, ge=0)
    min_split_gain: float = Field(default=0.0, ge=0)
    cat_smooth: float = Field(default=10.0, ge=0)
    min_data_per_group: int = Field(default=20, ge=1)
    early_stopping_rounds: int = Field(default=50, ge=1)
    monotone: dict[str, Literal[-1, 0, 1]] = Field(default_factory=dict)
    num_threads: int = Field(default=0, ge=0)


# What each kind that reads ``train.model.options`` accepts there, checked with the spec.
KIND_OPTIONS: dict[str, type[_Frozen]] = {"gbm": GbmOptions}
AUTO_KIND = "auto"  # train.model.kind: chosen from the data (gbm for tables, cnn for images)


class ModelSpec(_Frozen):
    """Which model to train.

    ``activation`` follows every hidden layer of the MLP and every convolution.
    ``kind`` is a name in :data:`mlcycle.plugins.MODEL_KINDS`: ``mlp`` suits
    tables (and flattened small images); ``linear`` is logistic (or, for
    regression, ridge) regression over the same preprocessing, its L2
    penalty ``weight_decay``; ``cnn`` needs an image column and
    adds any tabular columns to its head; ``custom`` calls ``factory``
    (``package.module:function``) with ``in_features``, ``n_outputs`` and
    ``options`` and puts the module it returns after mlcycle's preprocessing;
    ``gbm`` is gradient-boosted trees (LightGBM), set by ``options``
    (:class:`GbmOptions`); ``auto`` picks ``gbm`` for a table and ``cnn``
    when the data has an image column. A registered kind reads the fields it
    needs (``options`` for its own).
    """

    kind: str = "mlp"
    hidden: tuple[Annotated[int, Field(gt=0)], ...] = (128, 64)
    channels: tuple[Annotated[int, Field(gt=0)], ...] = (32, 64)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    activation: Literal["relu", "gelu", "silu", "tanh", "leaky_relu"] = "relu"
    categorical: Literal["onehot", "embedding"] = "onehot"
    embedding_dim: int | None = Field(default=None, gt=0)
    init: Literal["default", "xavier", "kaiming", "normal"] = "default"
    init_std: float = Field(default=0.02, gt=0)
    factory: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _registered_kind(cls, name: str) -> str:
        return name if name == AUTO_KIND else MODEL_KINDS.check(name)

    @model_validator(mode="after")
    def _kind_options(self) -> ModelSpec:
        model = KIND_OPTIONS.get(self.kind)
        if model is not None:
            try:
                model.model_validate(self.options)
            except ValidationError as exc:
                lines = format_validation_error(exc, model).splitlines()
                raise ValueError(f"options of kind {self.kind!r}: " + "; ".join(lines)) from None
        return self

    @model_validator(mode="after")
    def _custom_needs_factory(self) -> ModelSpec:
        if self.kind == "custom" and self.factory is None:
            raise ValueError("kind 'custom' needs factory: package.module:function")
        return self


class EarlyStoppingSpec(_Frozen):
    """Stop when the validation metric has not improved by ``min_delta`` for ``patience`` epochs.

    ``metric`` is ``loss`` or any metric of the task in evaluation's metric
    table (``mlcycle.evaluate.METRICS``: ``accuracy``, ``f1_macro``,
    ``roc_auc``, ``log_loss``, ... for classification; ``mae``, ``rmse``,
    ``r2``, ``mape`` for regression), computed on the validation rows by the
    same code that evaluates the test rows, in the direction the table gives.
    The best epoch's weights are restored at the end.
    """

    metric: Literal["loss", MetricName] = "loss"
    patience: int = Field(default=10, ge=0)
    min_delta: float = Field(default=0.0, ge=0)


class ScheduleSpec(_Frozen):
    """Learning-rate schedule, stepped once per epoch after ``warmup_epochs`` of linear warm-up."""

    kind: Literal["constant", "cosine", "step", "plateau"] = "constant"
    warmup_epochs: int = Field(default=0, ge=0)
    step_size: int = Field(default=10, gt=0)
    gamma: float = Field(default=0.1, gt=0, le=1)
    patience: int = Field(default=3, ge=0)
    min_lr: float = Field(default=0.0, ge=0)


class DistillSpec(_Frozen):
    """Knowledge distillation from a registered version (``teacher``: ``NAME@VERSION``).

    The loss becomes ``alpha * T^2 * KL(teacher || student at temperature T)
    + (1 - alpha) * the task's loss``; the teacher runs in PyTorch from its
    stored weights, once, on the training rows. Classification only.
    """

    teacher: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+(@[A-Za-z0-9_.-]+)?$")
    temperature: float = Field(default=4.0, gt=0)
    alpha: float = Field(default=0.7, ge=0, le=1)


class AdversarialSpec(_Frozen):
    """Adversarial training: attacked copies of part of every batch (``attack``: off when null).

    In each batch the first ``ratio`` of the (shuffled) rows are replaced by
    their FGSM or PGD (L-infinity) versions, generated on the fly against the
    current weights with the training loss: ``eps`` is in units of each
    numeric column's training standard deviation and of the training pixel
    range for an image; categorical and boolean inputs are never moved.
    PGD starts at a random point of the ball and takes ``steps`` steps of
    ``2.5 * eps / steps``; FGSM takes one step of ``eps``. ``ratio`` 1 is
    Madry et al.'s training on attacked rows only.
    """

    attack: Literal["fgsm", "pgd"] | None = None
    eps: float = Field(default=0.1, gt=0)
    steps: int = Field(default=3, ge=1)
    ratio: float = Field(default=0.5, gt=0, le=1)


class TrainSpec(_Frozen):
    """How to train: the model, the loss, the optimiser and when to stop.

    A checkpoint is taken after every epoch and stored off the training
    thread; when epochs are shorter than ``checkpoint_interval_s`` only the
    newest is stored once per interval (0: store every one), so a kill loses
    at most that much work and fast epochs are not slowed by storage.
    ``executor`` (a name in :data:`mlcycle.plugins.EXECUTORS`) is where the
    training runs: ``local``, this process; ``ray``, a Ray cluster. ``workers``
    above 1 trains data-parallel replicas (PyTorch DDP under Ray Train), each
    on its share of every batch: an executor that runs one process refuses it.
    """

    data: str | None = None
    model: ModelSpec = Field(default_factory=ModelSpec)
    loss: Literal["auto", "cross_entropy", "bce", "mse", "huber"] = "auto"
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(default=1e-3, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=64, gt=0)
    max_epochs: int = Field(default=100, gt=0)
    early_stopping: EarlyStoppingSpec = Field(default_factory=EarlyStoppingSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    grad_clip: float | None = Field(default=None, gt=0)
    class_weight: Literal["none", "balanced"] | dict[str, Annotated[float, Field(gt=0)]] = "none"
    sampler: Literal["shuffle", "balanced"] = "shuffle"
    seed: int = Field(default=0, ge=0)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    mixed_precision: bool = True
    gap_warning: float = Field(default=0.1, ge=0)
    checkpoint_interval_s: float = Field(default=1.0, ge=0)
    executor: str = "local"
    workers: int = Field(default=1, ge=1)
    distill: DistillSpec = Field(default_factory=DistillSpec)
    adversarial: AdversarialSpec = Field(default_factory=AdversarialSpec)

    @field_validator("executor")
    @classmethod
    def _registered_executor(cls, name: str) -> str:
        return EXECUTORS.check(name)


class EvaluateSpec(_Frozen):
    """How to judge a trained model on its held-out test split.

    ``slices`` names columns to break the metrics down by; a numeric one with
    more than ``bins`` distinct values is cut into ``bins`` quantile bins.
    """

    bootstrap: int = Field(default=1000, ge=0)
    threshold_metric: Literal["f1", "balanced_accuracy", "accuracy", "youden"] | None = None
    slices: tuple[str, ...] = ()
    bins: int = Field(default=4, ge=2)


class DriftColumnSpec(_Frozen):
    """The drift test of one column (a name in :data:`mlcycle.plugins.DRIFT_TESTS`).

    It replaces the default chosen by the column's type and size.
    """

    test: str
    threshold: float | None = Field(default=None, gt=0)

    @field_validator("test")
    @classmethod
    def _registered_test(cls, name: str) -> str:
        return DRIFT_TESTS.check(name)


class PerformanceSpec(_Frozen):
    """Performance of a window once labels arrive: alert on a drop past ``max_drop``.

    ``metric`` is any metric of the task in the metric table
    (``mlcycle.evaluate.METRICS``); it defaults to accuracy for classifiers
    and RMSE for regression. A drop alerts only when the bootstrap confidence
    interval of the window's metric lies wholly on the worse side of the
    reference, so a small window cannot raise it by chance.
    """

    metric: MetricName | None = None
    max_drop: float = Field(default=0.05, ge=0)
    bootstrap: int = Field(default=500, ge=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    min_labels: int = Field(default=30, gt=0)


class FairnessSpec(_Frozen):
    """Bias over time for the sensitive columns (Fairlearn's metrics).

    Each column of ``sensitive`` is reported on its own and, with
    ``intersections``, all of them together (``sex×race``: one group per
    combination of values, as Fairlearn's ``MetricFrame`` forms them). Groups
    with fewer than ``min_group_rows`` rows are reported but left out of the
    differences.

    A difference alerts, by default, only relative to the reference (the
    model's answers on its validation rows): when it is more than ``margin``
    above the reference's *and* so is the lower end of its bootstrap interval
    (``bootstrap`` resamples at ``confidence``, seeded by ``seed``), so a small
    group's noise does not alert and a model that was already unequal on clean
    data is judged against itself. ``max_difference`` adds an absolute limit on
    the difference itself; it is off unless set.
    """

    sensitive: tuple[str, ...] = ()
    positive_label: str | None = None
    max_difference: float | None = Field(default=None, gt=0, le=1)
    margin: float = Field(default=0.05, ge=0, le=1)
    min_group_rows: int = Field(default=20, gt=0)
    intersections: bool = True
    confidence: float = Field(default=0.95, gt=0, lt=1)
    bootstrap: int = Field(default=1000, ge=100)
    seed: int = Field(default=0, ge=0)


class OODSpec(_Frozen):
    """Out-of-distribution inputs: the score quantile that flags a row, and the share that alerts."""

    quantile: float = Field(default=0.995, gt=0.5, lt=1)
    max_share: float = Field(default=0.05, gt=0, le=1)


class AttributionSpec(_Frozen):
    """Attribution drift: has the model's reasoning moved, not only its inputs?

    The global attribution of each input (the mean absolute baseline Shapley
    value over ``rows`` sampled rows, ``permutations`` each) on the window is
    ranked against the same on the reference's validation rows; the nDCG of
    the window's ranking, with the reference's attributions as relevance,
    below ``min_ndcg`` alerts (0.9: SageMaker Clarify's rule). Off with
    ``enabled: false`` (it runs the model ``rows x permutations x (inputs+1)``
    times on each side).
    """

    enabled: bool = True
    rows: int = Field(default=100, ge=10, le=10_000)
    permutations: int = Field(default=8, ge=2, le=256)
    min_ndcg: float = Field(default=0.9, gt=0, le=1)
    min_rows: int = Field(default=30, ge=1)


class MonitorSpec(_Frozen):
    """How ``mlcycle monitor`` decides that a deployed model is in trouble.

    ``defaults`` chooses the default drift tests: ``mlcycle`` (chi-squared
    homogeneity for categories, distinct values counted on the reference) or
    ``evidently`` (Evidently's exact choice: chi-squared goodness of fit, a
    Z-test for two categories, distinct values counted on reference and
    current together). ``min_rows`` is the fewest rows (non-missing values per
    column) on which drift and out-of-distribution checks give a verdict; by
    default each test's own minimum, sized so that a window that did not move
    is flagged in at most about 5 % of cases: 30 rows for KS, chi-squared, Z
    and the out-of-distribution share, 500 for PSI, 700 for Jensen-Shannon and
    1,000 for the Wasserstein distance (see ``mlcycle.monitor._report``).
    """

    multiple_testing: Literal["none", "bonferroni", "benjamini-hochberg"] = "benjamini-hochberg"
    drift_share: float = Field(default=0.5, gt=0, le=1)
    defaults: Literal["mlcycle", "evidently"] = "mlcycle"
    min_rows: int | None = Field(default=None, gt=0)
    columns: dict[str, DriftColumnSpec] = Field(default_factory=dict)
    timeline_windows: int = Field(default=6, ge=1, le=100)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec)
    fairness: FairnessSpec = Field(default_factory=FairnessSpec)
    ood: OODSpec = Field(default_factory=OODSpec)
    attribution: AttributionSpec = Field(default_factory=AttributionSpec)
    webhook: str | None = Field(default=None, pattern=r"^https?://")
    webhook_timeout_s: float = Field(default=5.0, gt=0)


class TriggerSpec(_Frozen):
    """What starts a retraining. ``None`` turns a trigger off.

    ``attribution_drift`` retrains when the inputs' attribution ranking moved
    (``monitor.attribution``). ``performance_drop`` judges the newest ``performance_rows`` labelled rows
    the champion answered (realised performance against its reference, with
    ``monitor.performance``'s interval rule), besides the monitored window: a
    change of concept shows in the newest labels long before it dominates a
    window of thousands of rows. ``new_labels`` retrains after that many
    labelled rows since the last retraining. ``keep_improving`` (a ratio)
    retrains after a promotion once the labelled rows the champion never saw
    reach that multiple of the rows it was trained on, and goes on until two
    challengers in a row fail to beat the champion: one trained on the first
    few hundred post-change rows is a start, not the end.

    Each setting but ``performance_rows`` is a trigger of
    :data:`mlcycle.plugins.TRIGGERS`; a registered trigger is turned on by a
    key of its name, its value being its setting (``my_trigger: 0.2``).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    drift: bool = True
    performance_drop: bool = True
    performance_rows: int = Field(default=500, gt=0)
    ood_share: float | None = Field(default=0.1, gt=0, le=1)
    attribution_drift: bool = False  # monitor.attribution's nDCG alert (opt in)
    interval: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?\s*[smhd]$")
    new_labels: int | None = Field(default=None, gt=0)
    keep_improving: float | None = Field(default=0.5, gt=0)

    @model_validator(mode="after")
    def _registered_triggers(self) -> TriggerSpec:
        for name in self.model_extra or {}:
            if name not in TRIGGERS:
                raise ValueError(TRIGGERS.unknown(name))
        return self

    def setting(self, name: str) -> Any:
        """The setting of trigger ``name`` (None when it is off or not set)."""
        if name in type(self).model_fields:
            return getattr(self, name)
        return (self.model_extra or {}).get(name)

    def settings(self) -> dict[str, Any]:
        """Every trigger that is on, by name: built-ins first, then registered ones."""
        names = [n for n in type(self).model_fields if n != "performance_rows"]
        names += list(self.model_extra or {})
        return {
            n: value for n in names if (value := self.setting(n)) is not None and value is not False
        }


AUDIT_KINDS = ("explain", "fairness", "robustness")


class AuditLimitSpec(_Frozen):
    """The range an audit figure must fall in: ``{min: 0.8, max: 1.25}``; either may be left out."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> AuditLimitSpec:
        if self.min is None and self.max is None:
            raise ValueError("an audit limit needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class GateSpec(_Frozen):
    """When a challenger may replace the champion.

    Both are scored on the same fresh held-out rows that neither trained on; the
    challenger wins when ``metric`` (any of the task's in the metric table,
    ``mlcycle.evaluate.METRICS``) improves by at least ``min_delta`` and, with
    ``require_ci``, the bootstrap confidence interval of the paired difference
    excludes zero. ``min_delta`` is in the metric's own units (0.01: one point of
    accuracy), except for ``mae`` and ``rmse``, in the target's units, where it
    is relative to the champion's value (0.01: 1 % lower error): a retraining
    and a rollout are not worth a gain smaller than that. ``guards`` maps a guard metric to the most it may get worse
    (``demographic_parity_difference``, ``equalized_odds_difference``,
    ``latency_ms`` or any evaluation metric).
    """

    metric: MetricName | None = None
    min_delta: float = Field(default=0.01, ge=0)
    require_ci: bool = True
    confidence: float = Field(default=0.95, gt=0, lt=1)
    bootstrap: int = Field(default=1000, ge=100)
    guards: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    # Limits on the challenger's audit (``mlcycle audit``), run by the gate: keys
    # ``KIND.FIGURE`` as ``mlcycle audit --json`` lists them under ``figures``
    # (``fairness.DI``: every facet's disparate impact; ``robustness.pgd@0.1``:
    # accuracy under PGD at eps 0.1); every value of the figure must be in range.
    audit: dict[str, AuditLimitSpec] = Field(default_factory=dict)

    @field_validator("audit")
    @classmethod
    def _audit_kinds(cls, limits: dict[str, AuditLimitSpec]) -> dict[str, AuditLimitSpec]:
        for key in limits:
            kind, dot, figure = key.partition(".")
            if not dot or not figure or kind not in AUDIT_KINDS:
                raise ValueError(
                    f"{key!r} is not KIND.FIGURE with KIND one of {', '.join(AUDIT_KINDS)} "
                    "(e.g. fairness.DI, robustness.pgd@0.1)"
                )
        return limits


class RolloutSpec(_Frozen):
    """How a winning challenger reaches all traffic.

    ``canary`` sends ``steps`` shares of traffic to ``@challenger``, each for at
    least ``bake_s`` seconds and ``min_requests`` requests, comparing live error
    rate, median latency (``max_latency_ratio`` times the champion's, plus 1 ms)
    and (with labels) accuracy with the champion's; ``shadow``
    mirrors traffic first; ``direct`` promotes at once.
    """

    mode: Literal["canary", "shadow", "direct"] = "canary"
    steps: tuple[Annotated[float, Field(gt=0, le=1)], ...] = (0.1, 0.5)
    bake_s: float = Field(default=30.0, ge=0)
    min_requests: int = Field(default=50, ge=0)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_latency_ratio: float = Field(default=2.0, ge=1)
    max_accuracy_drop: float = Field(default=0.02, ge=0)
    timeout_s: float = Field(default=3600.0, gt=0)


# Objectives a study may ask for besides the metric table's: the exported graph's
# latency on ONNX Runtime at ``tune.deploy_batch`` rows (measured), and the size.
TUNE_OBJECTIVES_EXTRA = ("latency_ms", "parameters")
# Names in ``tune.space`` that set several fields at once: ``model.depth`` hidden
# layers (MLP) or convolutions (CNN), ``model.width`` units per layer (MLP) or the
# first convolution's channels, doubled at each next one (CNN).
TUNE_VIRTUAL = ("model.depth", "model.width")


class ParamSpace(_Frozen):
    """The values one field of ``train`` may take in a study.

    A range (``low``, ``high``; ``log`` for a log-uniform draw, ``step`` for a
    grid of values) or a list of ``choices``. A range over an integer field
    draws integers.
    """

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: tuple[Any, ...] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpace:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low and high, not both")
            if not self.choices:
                raise ValueError("choices is empty; list at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high (a range) or choices (a list)")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"low {self.low} and high {self.high} must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}; low must be <= high")
        if self.log and self.low <= 0:
            raise ValueError(f"log range needs low > 0, got low {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a log range cannot have a step")
        return self


class TuneSpec(_Frozen):
    """Hyper-parameter tuning (``mlcycle tune``): an Optuna study over fields of ``train``.

    ``objective`` is one metric of the metric table measured on the
    validation split (its direction comes from the table; default: the
    task's headline metric), or several for a Pareto front, where
    ``latency_ms`` (the exported graph on ONNX Runtime at ``deploy_batch``
    rows, measured) and ``parameters`` may join. ``space`` maps a field of
    ``train`` (``lr``, ``model.hidden``, ``schedule.kind``) or
    ``model.depth``/``model.width`` to its range or choices; empty: the
    defaults of the model kind. ``pruner`` ``auto`` is Hyperband for one
    objective (none for several, which Optuna cannot prune). The study stops
    after ``n_trials`` trials, after ``timeout_s`` seconds, or when the best
    value reaches ``target``. ``max_epochs`` caps each trial (default
    ``train.max_epochs``). ``storage`` ``auto`` is a journal file in the
    project, or the PostgreSQL store when the project uses one.
    """

    objective: tuple[str, ...] = ()
    sampler: Literal["tpe", "random", "cmaes", "gp", "grid", "nsga2"] = "tpe"
    pruner: Literal["auto", "hyperband", "successive_halving", "median", "none"] = "auto"
    n_trials: int = Field(default=20, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    target: float | None = None
    max_epochs: int | None = Field(default=None, gt=0)
    seed: int = Field(default=0, ge=0)
    workers: int = Field(default=1, ge=1)
    storage: Literal["auto", "journal", "sqlite"] = "auto"
    deploy_batch: int = Field(default=1, gt=0)
    space: dict[str, ParamSpace] = Field(default_factory=dict)

    @field_validator("objective", mode="before")
    @classmethod
    def _split_objective(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("objective")
    @classmethod
    def _known_objectives(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        allowed = (*METRIC_NAMES, *TUNE_OBJECTIVES_EXTRA)
        for name in names:
            if name not in allowed:
                raise ValueError(f"{name!r} is not one of {', '.join(allowed)}")
        if len(set(names)) != len(names):
            raise ValueError(f"{list(names)} names an objective twice")
        if names and names[0] in TUNE_OBJECTIVES_EXTRA:
            raise ValueError(
                f"the first objective must be a metric of the validation split, not {names[0]!r}"
            )
        return names


class LoopTuneSpec(_Frozen):
    """Retune when the loop retrains, instead of reusing the champion's parameters.

    The cycle's study starts from the champion's training spec and searches
    ``tune:``'s space (sampler, pruner, workers and storage too) on the fresh
    data for ``n_trials`` trials or ``timeout_s`` seconds (default:
    ``tune.timeout_s``); its objective is ``loop.gate.metric`` when set, else
    the first of ``tune.objective``. Its best trial is the challenger.
    """

    n_trials: int = Field(default=10, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)


class RetrainSpec(_Frozen):
    """How the loop trains a challenger: ``tune`` a study (null: the champion's parameters)."""

    tune: LoopTuneSpec | None = None


class LoopSpec(_Frozen):
    """The closed loop: triggers, retraining data, the gate and the rollout.

    ``data`` is what a challenger trains on: ``window`` the fresh labelled rows
    alone, ``reference+window`` the champion's own dataset and the fresh rows,
    ``all`` every labelled row logged as well. ``auto`` (the default) chooses
    by what triggered: after a performance drop the old labels may be wrong
    now (a change of concept) and would outvote the fresh ones, so ``window``;
    otherwise (drift of the inputs, new labels, a schedule) the old labels
    still hold and more rows help, so ``reference+window``. A ``holdout`` share
    of the fresh rows judges the gate; held-out rows of earlier cycles under
    the same concept join it, up to ``max_holdout_rows``.
    """

    model: str | None = None
    interval_s: float = Field(default=300.0, gt=0)
    triggers: TriggerSpec = Field(default_factory=TriggerSpec)
    data: Literal["auto", "reference+window", "window", "all"] = "auto"
    window_rows: int = Field(default=5000, gt=0)
    min_labels: int = Field(default=200, gt=0)
    holdout: float = Field(default=0.3, gt=0, lt=1)
    max_holdout_rows: int = Field(default=1000, gt=0)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)


class Spec(_Frozen):
    """The whole ``mlcycle.yaml``."""

    project: ProjectSpec = Field(default_factory=ProjectSpec)
    store: StoreSpec = Field(default_factory=StoreSpec)
    artifacts: ArtifactsSpec = Field(default_factory=ArtifactsSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    tune: TuneSpec = Field(default_factory=TuneSpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    loop: LoopSpec = Field(default_factory=LoopSpec)

    @model_validator(mode="after")
    def _tuned_fields_exist(self) -> Spec:
        fields = train_fields(self.train)
        kind = self.train.model.kind
        own = [KIND_OPTIONS[kind]] if kind in KIND_OPTIONS else []
        if kind == AUTO_KIND:
            own = list(KIND_OPTIONS.values())
        fields |= {f"model.options.{n}": None for model in own for n in model.model_fields}
        for key in self.tune.space:
            if tune_path(key) not in fields and key not in TUNE_VIRTUAL:
                raise ValueError(
                    f"tune.space.{key}: names no field of train; searchable: "
                    f"{', '.join([*TUNE_VIRTUAL, *sorted(fields)])}"
                )
        return self

    def with_overrides(self, overrides: Mapping[str, Any], *, via: str = "override") -> Spec:
        """A copy with dotted keys replaced (``train.lr``, or ``lr`` for ``train.lr``).

        ``via`` names where the overrides came from in error messages (the CLI: ``--set``).

        Raises:
            SpecError: a key names no field, or a value is invalid.

        Example:
            >>> Spec().with_overrides({"lr": 0.01, "train.model.kind": "cnn"}).train.lr
            0.01
        """
        data = self.model_dump(mode="json")
        for key, value in overrides.items():
            path = key.split(".")
            if path[0] not in data:
                path = ["train", *path]
            node = data
            for part in path[:-1]:
                child = node.get(part)
                if not isinstance(child, dict):
                    raise SpecError(f"{via} {key}: {'.'.join(path)} names no field of the spec")
                node = child
            if path[-1] not in node and not _is_open_mapping(path):
                raise SpecError(f"{via} {key}: {'.'.join(path)} names no field of the spec")
            node[path[-1]] = value
        return parse_spec(data, source=via)

    def dataset(self, name: str) -> DatasetSpec:
        """The spec of dataset ``name``, or the defaults when the spec names none."""
        return self.data.datasets.get(name) or DatasetSpec()


def tune_path(key: str) -> str:
    """The dotted path under ``train`` that a ``tune.space`` key names (``train.lr`` → ``lr``)."""
    return key[len("train.") :] if key.startswith("train.") else key


def train_fields(train: TrainSpec) -> dict[str, Any]:
    """Every leaf field of ``train`` by dotted path, with its value (what a study may search).

    >>> fields = train_fields(TrainSpec())
    >>> fields["lr"], fields["model.hidden"], fields["schedule.kind"]
    (0.001, [128, 64], 'constant')
    """
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, value in node.items():
            if isinstance(value, dict) and name not in {"options", "class_weight"}:
                walk(value, f"{prefix}{name}.")
            else:
                out[f"{prefix}{name}"] = value

    walk(train.model_dump(mode="json"), "")
    return {k: v for k, v in out.items() if k not in _NOT_SEARCHED}


# Fields of ``train`` that say where or how to run, not what to learn: never searched.
_NOT_SEARCHED = frozenset(
    {
        "data",
        "device",
        "executor",
        "workers",
        "checkpoint_interval_s",
        "gap_warning",
        "seed",
        "model.factory",
        "model.options",
        "mixed_precision",
    }
)


def _is_open_mapping(path: list[str]) -> bool:
    # Keys inside these mappings are the user's names, not fields.
    joined = ".".join(path[:-1])
    return joined in {
        "data.datasets",
        "train.model.options",
        "train.class_weight",
        "monitor.columns",
        "loop.gate.guards",
        "loop.triggers",
    } or (len(path) >= 4 and path[0] == "data" and path[1] == "datasets")


_CONSTRAINTS = {
    "greater_than": ("is not >", "gt"),
    "greater_than_equal": ("is not >=", "ge"),
    "less_than": ("is not <", "lt"),
    "less_than_equal": ("is not <=", "le"),
}


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _value(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value) if value is not None else "null"


def format_validation_error(exc: ValidationError, model: type[BaseModel] = BaseModel) -> str:
    """One line per problem: ``path: value what-is-wrong``.

    Example:
        >>> try:
        ...     Spec.model_validate({"data": {"imbalance_ratio": -1}})
        ... except ValidationError as e:
        ...     print(format_validation_error(e))
        data.imbalance_ratio: -1 is not > 1
    """
    lines = []
    for err in exc.errors(include_url=False):
        where = _location(tuple(err["loc"]))
        kind = err["type"]
        ctx = err.get("ctx") or {}
        value = err.get("input")
        if kind in _CONSTRAINTS:
            words, key = _CONSTRAINTS[kind]
            what = f"{_value(value)} {words} {_value(ctx.get(key))}"
        elif kind == "literal_error":
            what = f"{_value(value)} is not one of {ctx.get('expected')}"
        elif kind == "extra_forbidden":
            what = "unknown field"
            parent = _parent_fields(model, tuple(err["loc"])[:-1])
            if parent:
                what += f"; allowed: {', '.join(sorted(parent))}"
        elif kind == "missing":
            what = "is required"
        elif kind == "value_error":
            what = str(ctx.get("error", err["msg"]))
            if not isinstance(value, dict | list):
                what = f"{_value(value)}: {what}"
        elif kind == "string_pattern_mismatch":
            what = f"{_value(value)} does not match {ctx.get('pattern')}"
        else:
            msg = err["msg"][0].lower() + err["msg"][1:]
            what = f"{_value(value)}: {msg}"
        # A check across sections (``Spec``'s own) names its field in its message.
        lines.append(what if where == "(root)" else f"{where}: {what}")
    return "\n".join(lines)


def _parent_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names allowed at ``loc`` inside ``model``, for 'unknown field' hints."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            # inside a dict[str, Model]: the key; keep the value model
            continue
        current = _model_of(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_of(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", ())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(args):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def parse_spec(data: Any, *, source: str = "mlcycle.yaml") -> Spec:
    """Validate a mapping (parsed YAML) into a :class:`Spec`.

    Raises:
        SpecError: with one line per problem, prefixed by ``source``.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, Spec)) from None


def load_spec(path: Path) -> Spec:
    """Read and validate ``mlcycle.yaml``.

    Raises:
        SpecError: the file is not valid YAML or not a valid spec.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{path.name}:{where}: invalid YAML: {problem}") from None
    return parse_spec(data, source=path.name)
