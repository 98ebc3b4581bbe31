"""``mitigate``: a fairer variant of a registered classifier, registered and measured beside it.

Three methods, all Fairlearn's:

- ``threshold``: post-processing. ``ThresholdOptimizer`` is fitted on the
  parent's predicted probabilities for the *validation* rows of its dataset
  version and the sensitive column; its group rule is written into a new
  ONNX graph around the parent's (:mod:`~mlcycle.audit._thresholds`), which
  takes the sensitive column as an extra input. Works on any binary version
  (no PyTorch needed). The graph is checked against Fairlearn's own answers
  on the test rows before anything is registered.
- ``grid-search``: reductions. ``GridSearch`` retrains the parent's network
  (its run's own training spec) on reweighted, relabelled training rows, one
  network per Lagrange multiplier of a grid, and keeps the best trade-off on
  the training rows; that network is exported and registered like any run.
- ``exponentiated-gradient``: reductions. ``ExponentiatedGradient`` finds a
  randomized mix of such networks; the mix is registered as one graph that
  runs them all (:func:`~mlcycle.audit._reductions.mixture_graph`): its
  probability of the positive class is Fairlearn's, its label a seeded,
  deterministic draw of it, as for ``threshold``.

Both randomized rules (``threshold``, ``exponentiated-gradient``) output
``probabilities`` = the rule's probability of each class (not the inner
model's) and a ``label`` drawn from it by a hash of the row's score and the
seed: the same row always gets the same answer, and the share of positive
answers in a group is the rule's.

The variant becomes the next version of the same model with lineage
``derived_from`` (parent version, method, params). Parent and variant are
then measured on the *test* rows: accuracy with a bootstrap interval, the
demographic parity and equalized odds differences (Fairlearn's functions),
and the difference of the targeted constraint, so that a fix of one
difference that worsens another shows.

Example (in a project whose ``mortgage`` is a binary classifier and whose
dataset has a sensitive column ``afam``)::

    result = mitigate(project, "mortgage@champion", sensitive="afam")
    result.variant["demographic_parity_difference"]  # lower than result.parent[...]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._html import esc, fmt, section, table
from mlcycle.audit._parent import ParentVersion, model_inputs, read_parent
from mlcycle.audit._thresholds import check_threshold_graph, fit_thresholds
from mlcycle.errors import SpecError
from mlcycle.evaluate import bootstrap_ci
from mlcycle.monitor import reference_answers
from mlcycle.registry import Predictor
from mlcycle.registry._add import VersionDraft, add_version
from mlcycle.registry._card import dataset_facts

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = ["CONSTRAINTS", "METHODS", "OBJECTIVES", "MitigationResult", "mitigate"]

METHODS = ("threshold", "exponentiated-gradient", "grid-search")
# Fairlearn's names: ThresholdOptimizer's constraints; the reductions' Moment classes.
_THRESHOLD_CONSTRAINTS = (
    "demographic_parity",
    "equalized_odds",
    "true_positive_rate_parity",
    "false_positive_rate_parity",
    "true_negative_rate_parity",
    "false_negative_rate_parity",
)
_REDUCTION_CONSTRAINTS = (
    "demographic_parity",
    "equalized_odds",
    "true_positive_rate_parity",
    "false_positive_rate_parity",
    "error_rate_parity",
)
# What ThresholdOptimizer may maximise (equalized odds: the first two only).
OBJECTIVES = (
    "accuracy_score",
    "balanced_accuracy_score",
    "selection_rate",
    "true_positive_rate",
    "true_negative_rate",
)
CONSTRAINTS: dict[str, tuple[str, ...]] = {
    "threshold": _THRESHOLD_CONSTRAINTS,
    "exponentiated-gradient": _REDUCTION_CONSTRAINTS,
    "grid-search": _REDUCTION_CONSTRAINTS,
}
BOOTSTRAP = 1000


@dataclass(frozen=True)
class MitigationResult:
    """A mitigated variant and its parent, measured side by side on the test rows.

    ``parent`` and ``variant`` hold ``accuracy`` (with ``accuracy_low`` and
    ``accuracy_high``, a 95 % bootstrap interval), ``selection_rate`` per
    group, ``demographic_parity_difference``, ``equalized_odds_difference``
    and ``targeted_difference`` (the difference of ``constraint``).
    ``check`` is how the registered graph agrees with Fairlearn's own
    estimator on the test rows; ``details`` what the method found (the
    group rules, the grid, the weights).
    """

    model: str
    parent_version: str
    variant_version: str | None
    method: str
    constraint: str
    sensitive: str
    positive_label: str
    params: dict[str, Any]
    parent: dict[str, Any]
    variant: dict[str, Any]
    check: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    test_rows: int = 0

    @property
    def accuracy_lost_points(self) -> float:
        return 100.0 * (float(self.parent["accuracy"]) - float(self.variant["accuracy"]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "parent_version": self.parent_version,
            "variant_version": self.variant_version,
            "method": self.method,
            "constraint": self.constraint,
            "sensitive": self.sensitive,
            "positive_label": self.positive_label,
            "params": self.params,
            "test_rows": self.test_rows,
            "parent": self.parent,
            "variant": self.variant,
            "accuracy_lost_points": self.accuracy_lost_points,
            "check": self.check,
            "details": self.details,
        }


# -- measuring -------------------------------------------------------------------------------


def _differences(
    y_true: np.ndarray[Any, Any],
    y_pred: np.ndarray[Any, Any],
    groups: np.ndarray[Any, Any],
    constraint: str,
) -> dict[str, Any]:
    """Accuracy (with interval) and Fairlearn's differences, for 0/1 labels and predictions."""
    from fairlearn.metrics import (  # type: ignore[import-untyped]
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_negative_rate,
        true_positive_rate,
    )

    def accuracy(t: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
        return float(np.mean(t == p))

    low, high = bootstrap_ci(accuracy, y_true, y_pred, n_boot=BOOTSTRAP, seed=0)
    dp = float(demographic_parity_difference(y_true, y_pred, sensitive_features=groups))
    eo = float(equalized_odds_difference(y_true, y_pred, sensitive_features=groups))
    by_constraint: dict[str, Callable[..., Any]] = {
        "true_positive_rate_parity": true_positive_rate,
        "false_positive_rate_parity": false_positive_rate,
        "true_negative_rate_parity": true_negative_rate,
        "false_negative_rate_parity": false_negative_rate,
        "error_rate_parity": lambda t, p: float(np.mean(t != p)),
    }
    if constraint == "demographic_parity":
        targeted = dp
    elif constraint == "equalized_odds":
        targeted = eo
    else:
        frame = MetricFrame(
            metrics=by_constraint[constraint],
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=groups,
        )
        targeted = float(frame.difference())
    rates = MetricFrame(
        metrics=selection_rate, y_true=y_true, y_pred=y_pred, sensitive_features=groups
    ).by_group
    return {
        "accuracy": accuracy(y_true, y_pred),
        "accuracy_low": low,
        "accuracy_high": high,
        "demographic_parity_difference": dp,
        "equalized_odds_difference": eo,
        "targeted_difference": targeted,
        "selection_rate": {str(k): float(v) for k, v in rates.items()},
    }


# -- inputs ----------------------------------------------------------------------------------


def _check_choice(method: str, constraint: str) -> None:
    if method not in METHODS:
        raise SpecError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    allowed = CONSTRAINTS[method]
    if constraint not in allowed:
        raise SpecError(
            f"constraint: {constraint!r} is not one of {', '.join(allowed)} (method {method})"
        )


# -- registering ----------------------------------------------------------------------------


def _register_graph(
    project: Project,
    parent: ParentVersion,
    onnx_bytes: bytes,
    signature: dict[str, Any],
    *,
    method: str,
    params: dict[str, Any],
    run_id: str,
    alias: str | None,
    metrics: dict[str, Any],
    stored: dict[str, str] | None = None,
) -> ModelVersionRecord:
    record = parent.record
    predictor = Predictor(onnx_bytes, signature, name=record.name)
    dataset = project.datasets.get(record.lineage["dataset"])
    validation = parent.splits["validation"]
    draft = VersionDraft(
        task=record.task,
        onnx=onnx_bytes,
        signature=signature,
        metrics=metrics,
        lineage={
            **record.lineage,
            "run": run_id,
            "derived_from": {
                "model": record.name,
                "version": record.version,
                "method": method,
                "params": params,
            },
        },
        dataset=dataset_facts(dataset, record.lineage.get("split")),
        run_id=run_id,
        files={
            "reference.parquet": reference_answers(
                predictor,
                validation.select([s["name"] for s in signature["inputs"]] + [signature["target"]]),
                signature["target"],
            ),
            **({"ood.json": parent.files["ood.json"]} if "ood.json" in parent.files else {}),
        },
        stored=stored or {},
    )
    return add_version(
        project,
        record.name,
        draft,
        actor=project.actor,
        alias=alias,
        description=f"{method} mitigation of {record.ref}",
        reason=f"mitigated: {method} ({params.get('constraint')}) of {record.ref}",
    )


# -- the entry point ------------------------------------------------------------------------


def mitigate(
    project: Project,
    ref: str,
    *,
    sensitive: str,
    method: str = "threshold",
    constraint: str = "demographic_parity",
    register: bool = True,
    alias: str | None = None,
    seed: int = 0,
    eps: float | None = None,
    objective: str = "accuracy_score",
    positive_label: str | None = None,
    grid_size: int = 11,
    max_epochs: int | None = None,
    on_step: Callable[[str], None] | None = None,
) -> MitigationResult:
    """Make a variant of ``ref`` that satisfies ``constraint`` on ``sensitive``; measure both.

    Args:
        ref: ``NAME@VERSION`` or ``NAME@ALIAS`` of a binary classifier.
        sensitive: the dataset column whose groups are to be treated alike
            (it need not be a model input; the threshold variant takes it as one).
        method: ``threshold`` (post-processing, any version), ``grid-search``
            or ``exponentiated-gradient`` (retrain the version's network).
        constraint: one of :data:`CONSTRAINTS` ``[method]`` (Fairlearn's names).
        register: register the variant as the next version of the model.
        alias: put this alias on the registered variant.
        seed: the threshold graph's draw (see :mod:`~mlcycle.audit._thresholds`);
            the retrainings' seed for the reductions.
        eps: the constraint's slack: ``ThresholdOptimizer``'s ``tol`` (default
            none: exact), the reductions' ``difference_bound`` (default 0.01).
        objective: what ``threshold`` maximises under the constraint (one of
            :data:`OBJECTIVES`): ``balanced_accuracy_score`` keeps a rule from
            collapsing to one answer for everyone when a class is rare.
        positive_label: the favourable class (default ``monitor.fairness.positive_label``
            of the spec, else the second class).
        grid_size: grid points (``grid-search``) or iterations
            (``exponentiated-gradient``): each trains one network.
        max_epochs: epochs of each retraining (default: the run's own).

    Example:
        >>> result = mitigate(project, "mortgage@1", sensitive="afam")  # doctest: +SKIP
        >>> result.variant_version                                       # doctest: +SKIP
        'mortgage@2'

    Raises:
        SpecError: an unknown method or constraint, a regression or multiclass
            model, ``eps`` outside (0, 1), an unknown positive label.
        DataError: ``sensitive`` is not a column of the dataset, or has one group.
        NotFoundError: no such version, or it records no dataset version.
        ConflictError: a reduction asked of a version without trained weights.
    """
    _check_choice(method, constraint)
    allowed = OBJECTIVES if constraint != "equalized_odds" else OBJECTIVES[:2]
    if objective not in allowed:
        raise SpecError(
            f"objective: {objective!r} is not one of {', '.join(allowed)} "
            f"(ThresholdOptimizer under {constraint})"
        )
    if objective != "accuracy_score" and method != "threshold":
        raise SpecError(
            f"objective: {objective!r} applies to --method threshold; the reductions minimise "
            "the error rate"
        )
    if eps is not None and not 0 < eps < 1:
        raise SpecError(f"eps: {eps} is not between 0 and 1 (exclusive)")
    if eps is not None and method == "threshold" and constraint == "equalized_odds":
        raise SpecError(
            "eps: ThresholdOptimizer cannot relax equalized_odds (Fairlearn); leave eps unset "
            "or choose another constraint"
        )
    if grid_size < 2:
        raise SpecError(f"grid_size: {grid_size} is not >= 2")
    if max_epochs is not None and max_epochs < 1:
        raise SpecError(f"max_epochs: {max_epochs} is not >= 1")
    say = on_step or (lambda _: None)
    parent = read_parent(project, ref, sensitive, positive_label)
    record = parent.record
    positive_name = parent.classes[parent.positive]
    test = parent.splits["test"]
    y_test, g_test = parent.y["test"], parent.groups["test"]
    base = Predictor(parent.files["model.onnx"], parent.signature, name=record.ref)
    parent_labels = base.predict(model_inputs(test, parent.signature)).labels
    assert parent_labels is not None
    before = _differences(
        y_test, (parent_labels == positive_name).astype(np.int64), g_test, constraint
    )
    dataset_ref = record.lineage["dataset"]
    run_params = {
        "model": record.ref,
        "method": method,
        "constraint": constraint,
        "sensitive": sensitive,
        "positive_label": positive_name,
        "seed": seed,
        "eps": eps,
        "objective": objective,
    }
    stored: dict[str, str] = {}
    extra_metrics: dict[str, Any] = {}
    if method == "threshold":
        say("fitting ThresholdOptimizer on the validation rows")
        graph, signature, params, details, fairlearn_pmf = fit_thresholds(
            parent, sensitive, constraint, eps, seed, objective
        )
        variant = Predictor(graph, signature, name=record.name)
        answer = variant.predict(model_inputs(test, signature))
        assert answer.labels is not None and answer.probabilities is not None
        yes = (answer.labels == positive_name).astype(np.int64)
        check = check_threshold_graph(
            np.asarray(answer.probabilities[:, parent.positive], dtype=np.float64),
            yes,
            fairlearn_pmf(),
            record.ref,
        )
        run = project.runs.start(
            f"mitigate {record.ref}",
            params=run_params,
            dataset=dataset_ref,
            tags={"kind": "mitigate", "model": record.name, "method": method},
            experiment="mitigate",
        )
    else:
        say(f"{method}: retraining {record.ref} under {constraint}")
        from mlcycle.audit._reductions import reduction_variant, retrain

        retrained = retrain(project, parent, method, constraint, eps, grid_size, max_epochs, seed)
        params, details = retrained.params, retrained.details
        graph, run, stored, check = reduction_variant(
            project, parent, retrained, method=method, run_params=run_params, seed=seed
        )
        signature = parent.signature
        extra_metrics["parity"] = check
        answer = Predictor(graph, signature, name=record.name).predict(
            model_inputs(test, signature)
        )
        assert answer.labels is not None
        yes = (answer.labels == positive_name).astype(np.int64)
    after = _differences(y_test, yes, g_test, constraint)
    result = MitigationResult(
        model=record.name,
        parent_version=record.ref,
        variant_version=None,
        method=method,
        constraint=constraint,
        sensitive=sensitive,
        positive_label=positive_name,
        params=params,
        parent=before,
        variant=after,
        check=check,
        details=details,
        test_rows=test.num_rows,
    )

    def registered() -> MitigationResult:
        if not register:
            return result
        say("registering the variant")
        metrics = {
            "test": {"accuracy": after["accuracy"]},
            "test_ci": {
                "accuracy": {
                    "value": after["accuracy"],
                    "low": after["accuracy_low"],
                    "high": after["accuracy_high"],
                }
            },
            "test_metrics": {},
            "val": {},
            "threshold": None,
            "warnings": list(record.metrics.get("warnings", [])),
            "parity": extra_metrics["parity"]
            if "parity" in extra_metrics
            else _parity_of_rule(check),
            "mitigation": result.to_dict(),
        }
        new = _register_graph(
            project,
            parent,
            graph,
            signature,
            method=method,
            params=params,
            run_id=run.id,
            alias=alias,
            metrics=metrics,
            stored=stored,
        )
        return dataclasses.replace(result, variant_version=new.ref)

    if method != "threshold":  # the retrained network's run is finished: register from it
        return registered()
    with run:
        result = registered()
        run.finish("finished", result.to_dict())
    return result


def _parity_of_rule(check: dict[str, Any]) -> dict[str, Any]:
    """The threshold graph's check in the card's parity terms (see ``describe_parity``)."""
    rows = check["deterministic_rows"]
    return {
        **check,
        "reference": "Fairlearn's ThresholdOptimizer where its label is deterministic",
        "rows": rows,
        "label_agreement": check["deterministic_rows_equal"] / rows if rows else 1.0,
        "max_abs_diff": check["max_probability_difference"],
    }


# -- report ---------------------------------------------------------------------------------

_ROWS = (
    ("accuracy", "accuracy"),
    ("accuracy 95% low", "accuracy_low"),
    ("accuracy 95% high", "accuracy_high"),
    ("demographic parity difference", "demographic_parity_difference"),
    ("equalized odds difference", "equalized_odds_difference"),
    ("targeted difference", "targeted_difference"),
)


def html_sections(result: MitigationResult) -> list[str]:
    """The comparison table and the accuracy / demographic-parity trade-off chart."""
    from mlcycle.evaluate._figures import Figures

    parent_name = result.parent_version
    variant_name = result.variant_version or f"{result.method} variant (not registered)"
    rows = [[label, fmt(result.parent[key]), fmt(result.variant[key])] for label, key in _ROWS]
    groups = sorted(set(result.parent["selection_rate"]) | set(result.variant["selection_rate"]))
    for g in groups:
        rows.append(
            [
                f"selection rate, {result.sensitive}={g}",
                fmt(result.parent["selection_rate"].get(g)),
                fmt(result.variant["selection_rate"].get(g)),
            ]
        )
    note = (
        f'<p class="note">{esc(result.method)} under {esc(result.constraint)} on '
        f"{esc(result.sensitive)}; positive class {esc(result.positive_label)}; "
        f"{result.test_rows} test rows; accuracy lost: {result.accuracy_lost_points:.2f} points. "
        "Fixing one difference can worsen another: both are shown.</p>"
    )
    comparison = section(
        "Fairness mitigation",
        table(["test split", parent_name, variant_name], rows) + note,
    )
    figs = Figures()
    go = figs.go
    fig = go.Figure()
    for name, values, colour in (
        (parent_name, result.parent, "#9aa5b1"),
        (variant_name, result.variant, "#1f77b4"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[values["demographic_parity_difference"]],
                y=[values["accuracy"]],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [values["accuracy_high"] - values["accuracy"]],
                    "arrayminus": [values["accuracy"] - values["accuracy_low"]],
                },
                mode="markers+text",
                text=[esc(name)],
                textposition="top center",
                name=esc(name),
                marker={"size": 12, "color": colour},
            )
        )
    fig.update_xaxes(
        title_text="demographic parity difference (lower is fairer)", rangemode="tozero"
    )
    fig.update_yaxes(title_text="accuracy (95% interval)")
    chart = section("Accuracy against demographic parity difference", figs.html(fig, height=380))
    return [comparison, chart]
