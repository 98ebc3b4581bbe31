"""The fairness audit of a registered version: every bias metric, per facet, with intervals.

For each sensitive column and each of its values, the facet ``d`` (the rows
with that value) is compared with the rest ``a``; with two or more sensitive
columns, so is each combination of values of every pair of them
(``afam×single`` = ``yes×no``). A facet is audited only when both ``d`` and
``a`` have at least ``min_group`` rows in the test split; smaller ones are
listed as skipped, with their sizes and the reason.

*Where the rows come from.* The pre-training metrics (CI, DPL, KL, JS, LP,
TVD, KS, CDDL) describe the data the model learned from: the version's
dataset's **train** split. The post-training metrics (DPPL, DI, DCAcc, DCR,
RD, SD, DAR, DRR, AD, TE, CDDPL, FT) and GE compare the version's answers on
the **test** split with its labels. Each metric reports the rows of ``d``
and ``a`` it was computed on.

*Outcomes* are one-vs-rest for the ``positive`` class: by default the second
of a binary model's two classes (``yes`` of ``no``/``yes``, ``1`` of
``0``/``1``); a multiclass model must be told which class is favourable.
The KL, JS, LP, TVD and KS distances compare the whole label distribution
(every class). A regression model has no classes: only CI applies, the other
metrics are listed as skipped, and asking for one of them is an error.

*The flip test* needs the model: each row of ``d`` gets a counterfactual
twin whose facet columns hold the value most common in ``a``, and the
version's ONNX graph answers for the twin. A model that does not read the
facet's columns (mlcycle keeps ``sensitive`` columns out of the features)
answers its twin as it answered the row, so FT is 0 by construction; the
result says so. ``flip="neighbours"`` pairs each row of ``d`` with its
nearest rows of ``a`` instead, as Clarify defines the test.

*Intervals* are percentile bootstrap intervals at ``confidence`` over
``bootstrap`` resamples of the rows (drawn as multinomial counts, see
:mod:`~mlcycle.audit._bias`), seeded per facet from ``seed`` so a report is
reproducible and does not depend on the order of the facets.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from mlcycle.audit._bias import BIAS_METRICS, BiasMetric, Tally, facet_rates, generalized_entropy
from mlcycle.errors import DataError, NotFoundError, SpecError
from mlcycle.monitor._fairness import INTERSECTION, MISSING_GROUP
from mlcycle.registry import Predictor

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = [
    "FacetResult",
    "FairnessAudit",
    "MetricValue",
    "SkippedFacet",
    "fairness_audit",
]

Strings = NDArray[np.object_]
FLIPS = ("counterfactual", "neighbours")


@dataclass(frozen=True)
class MetricValue:
    """One metric of one facet (or of all rows, for GE).

    Attributes:
        key: The metric's stable key (``"DI"``); its definition is ``BIAS_METRICS[key]``.
        value: The metric on the rows; None where it is undefined (see ``note``).
        low, high: The percentile bootstrap interval; None without resamples or
            when no resample defines the metric.
        rows_d, rows_a: The rows of facet ``d`` and of the rest it was computed on
            (GE, facet-blind: ``rows_d`` is every row, ``rows_a`` 0).
        split: ``"train"`` (pre-training metrics) or ``"test"``.
        undefined_resamples: Resamples where the metric was undefined (left out of
            the interval).
        note: Why the value is undefined, or how it was made (FT), else None.
    """

    key: str
    value: float | None
    low: float | None
    high: float | None
    rows_d: int
    rows_a: int
    split: str
    undefined_resamples: int = 0
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        metric = BIAS_METRICS[self.key]
        return {
            "value": self.value,
            "interval": None if self.low is None else [self.low, self.high],
            "definition": metric.definition,
            "name": metric.name,
            "stage": metric.stage,
            "group_sizes": (
                {"all": self.rows_d, "split": self.split}  # facet-blind: every row
                if metric.stage == "overall"
                else {"d": self.rows_d, "a": self.rows_a, "split": self.split}
            ),
            "undefined_resamples": self.undefined_resamples,
            "note": self.note,
        }


@dataclass(frozen=True)
class FacetResult:
    """Every metric of one facet ``d`` (``column == value``) against the rest ``a``.

    Attributes:
        column: The sensitive column, or a pair of them joined by ``×``.
        value: The facet's value (``yes``), or the pair's values joined by ``×``.
        sizes: Rows of ``d`` and ``a`` in each split (``train_d``, ``train_a``,
            ``test_d``, ``test_a``).
        metrics: By key, in the order of ``BIAS_METRICS``.
        rates: Per facet (``d``, ``a``), the selection rate, accuracy, TPR and FPR on
            the test split (positive class vs the rest), as Fairlearn's MetricFrame
            gives them per group; None where undefined.
        counterfactual: How the flip test's twins were made.
    """

    column: str
    value: str
    sizes: Mapping[str, int]
    metrics: Mapping[str, MetricValue]
    rates: Mapping[str, Mapping[str, float | None]]
    counterfactual: str

    @property
    def key(self) -> str:
        """``column=value``, the facet's name in the report."""
        return f"{self.column}={self.value}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "value": self.value,
            "group_sizes": dict(self.sizes),
            "rates": {g: dict(r) for g, r in self.rates.items()},
            "counterfactual": self.counterfactual,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
        }


@dataclass(frozen=True)
class SkippedFacet:
    """A facet left out, with its sizes and why."""

    column: str
    value: str
    sizes: Mapping[str, int]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "value": self.value,
            "group_sizes": dict(self.sizes),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FairnessAudit:
    """The fairness audit of one version; :meth:`to_dict` is plain JSON.

    ``to_dict()`` holds ``model``, ``dataset``, ``task``, ``positive``,
    ``classes``, ``sensitive``, ``strata``, ``min_group``, ``bootstrap``,
    ``confidence``, ``seed``, ``facets`` (a list: per facet its ``column``,
    ``value``, ``group_sizes``, ``rates`` and ``metrics``, a mapping from the
    stable key (``"DI"``, ``"DPPL"``, ...) to ``value``, ``interval``
    (``[low, high]`` or None), ``definition``, ``name``, ``stage``,
    ``group_sizes`` and ``note``), ``skipped`` (facets left out and why),
    ``overall`` (``GE``, facet-blind, same shape as a metric) and ``notes``.
    """

    model: str
    dataset: str
    task: str
    positive: str | None
    classes: tuple[str, ...] | None
    sensitive: tuple[str, ...]
    strata: str | None
    min_group: int
    bootstrap: int
    confidence: float
    seed: int
    facets: tuple[FacetResult, ...]
    skipped: tuple[SkippedFacet, ...]
    overall: Mapping[str, MetricValue] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def facet(self, column: str, value: str) -> FacetResult:
        """The audited facet ``column == value``.

        Raises:
            NotFoundError: it was not audited (skipped, or no such value).
        """
        for f in self.facets:
            if f.column == column and f.value == value:
                return f
        have = ", ".join(f.key for f in self.facets) or "none"
        raise NotFoundError(f"fairness audit: no facet {column}={value}; audited: {have}")

    def to_dict(self) -> dict[str, Any]:
        document = {
            "model": self.model,
            "dataset": self.dataset,
            "task": self.task,
            "positive": self.positive,
            "classes": None if self.classes is None else list(self.classes),
            "sensitive": list(self.sensitive),
            "strata": self.strata,
            "min_group": self.min_group,
            "bootstrap": self.bootstrap,
            "confidence": self.confidence,
            "seed": self.seed,
            "facets": [f.to_dict() for f in self.facets],
            "skipped": [s.to_dict() for s in self.skipped],
            "overall": {k: m.to_dict() for k, m in self.overall.items()},
            "notes": list(self.notes),
        }
        plain: dict[str, Any] = json.loads(json.dumps(document))  # plain types only, checked
        return plain


@dataclass(frozen=True)
class _Facet:
    """A facet to audit: its columns and their values."""

    columns: tuple[str, ...]
    values: tuple[str, ...]
    explicit: bool

    @property
    def column(self) -> str:
        return INTERSECTION.join(self.columns)

    @property
    def value(self) -> str:
        return INTERSECTION.join(self.values)

    def rows(self, groups: Mapping[str, Strings]) -> NDArray[np.bool_]:
        mask = np.ones(len(next(iter(groups.values()))), dtype=bool)
        for column, value in zip(self.columns, self.values, strict=True):
            mask &= groups[column] == value
        return mask


def fairness_audit(
    project: Project,
    ref: str,
    *,
    sensitive: Sequence[str] | None = None,
    positive: str | None = None,
    intersections: bool = True,
    min_group: int = 30,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    strata: str | None = None,
    metrics: Sequence[str] | None = None,
    alpha: float = 2.0,
    flip: str = "counterfactual",
    neighbours: int = 5,
) -> FairnessAudit:
    """Audit version ``ref`` (``NAME@VERSION`` or ``NAME@ALIAS``) for bias, facet by facet.

    Args:
        sensitive: Columns to audit, each ``"column"`` (every value of it) or
            ``"column=value"`` (that facet only; an error if it is smaller than
            ``min_group``). Default: the columns whose role is ``sensitive`` in the
            dataset's schema.
        positive: The favourable class (default: the second class of a binary model;
            required for a multiclass one).
        intersections: Also audit each combination of values of every pair of the
            (whole) sensitive columns.
        min_group: The fewest rows of ``d`` and of ``a`` in the test split for a
            facet to be audited.
        bootstrap: Resamples for each interval (0: no intervals).
        seed: Seeds the resamples.
        confidence: The intervals' level.
        strata: A column whose values are the strata of CDDL and CDDPL (default:
            one stratum, so they are the plain demographic disparity).
        metrics: The metric keys to compute (default: all that apply to the task).
        alpha: GE's parameter.
        flip: How the flip test finds each row's counterpart in ``a``:
            ``counterfactual`` (its twin with the facet's columns set to the most
            common values of ``a``, answered by the ONNX graph: 0 by construction
            for a model that does not read them) or ``neighbours`` (Clarify's
            definition: the majority answer of its ``neighbours`` nearest rows of
            ``a`` on the model's other inputs, numbers standardised, categories
            one-hot).
        neighbours: k of ``flip="neighbours"`` (odd, so a vote cannot tie).

    Returns:
        A :class:`FairnessAudit`.

    Raises:
        NotFoundError: no such version, or it records no dataset.
        DataError: an unknown sensitive or strata column, a value it does not
            hold, a facet asked for explicitly that is smaller than ``min_group``.
        SpecError: a positive class that is not a class (or none for a
            multiclass model), an unknown metric, a metric that needs a
            classifier on a regression model, a limit out of range.
    """
    if min_group < 1:
        raise SpecError(f"fairness audit: min_group {min_group} is not >= 1")
    if bootstrap < 0:
        raise SpecError(f"fairness audit: bootstrap {bootstrap} is not >= 0")
    if not 0 < confidence < 1:
        raise SpecError(f"fairness audit: confidence {confidence} is not between 0 and 1")
    if not alpha > 0:
        raise SpecError(f"fairness audit: alpha {alpha} is not > 0")
    if flip not in FLIPS:
        raise SpecError(f"fairness audit: flip {flip!r} is not one of {', '.join(FLIPS)}")
    if neighbours < 1 or neighbours % 2 == 0:
        raise SpecError(f"fairness audit: neighbours {neighbours} is not an odd number >= 1")
    record = project.store.registry.get(ref)
    files = {p: project.artifacts.read_bytes(s) for p, s in record.files.items()}
    signature = json.loads(files["signature.json"])
    dataset_ref = record.lineage.get("dataset")
    if not dataset_ref:
        raise NotFoundError(f"{record.ref} records no dataset version: nothing to audit on")
    version = project.datasets.get(dataset_ref)
    schema = project.datasets.schema(version)
    splits = project.datasets.load_split(version)
    train, test = splits["train"], splits["test"]
    task = str(signature["task"])
    regression = task == "regression"
    chosen = _metrics(metrics, regression, record.ref)
    notes: list[str] = []
    if regression and metrics is None:
        notes.append(
            f"{record.ref} is a regression model: only CI applies; the other metrics "
            "need a classifier"
        )
    classes = None if regression else tuple(str(c) for c in signature["classes"])
    favourable = None if classes is None else _positive(positive, classes, record.ref)

    columns = list(test.column_names)
    facets = _facets(sensitive, schema.sensitive, columns, intersections)
    names = sorted({c for f in facets for c in f.columns})
    if strata is not None and strata not in columns:
        raise DataError(
            f"fairness audit: strata column {strata!r} is not in {version.ref}; "
            f"it has {', '.join(columns)}"
        )
    groups = {"train": _groups(train, names), "test": _groups(test, names)}
    facets = _expand(facets, groups["test"], version.ref)

    predictor = Predictor(files["model.onnx"], signature, name=record.name, version=record.version)
    inputs = predictor.input_names
    answer = predictor.predict(test.select(inputs))
    target = str(signature["target"])
    if classes is not None:
        predicted = np.asarray(answer.labels, dtype=object).astype(str)
        truth = {part: _strings(t.column(target)) for part, t in (("train", train), ("test", test))}
    else:
        predicted = np.zeros(test.num_rows, dtype=object)
        truth = {part: np.zeros(t.num_rows, dtype=object) for part, t in splits.items()}
    outcome_classes: tuple[Any, ...] = classes if classes is not None else (0,)
    outcome_positive: Any = favourable if favourable is not None else 0
    layers = {
        "train": None if strata is None else _strings(train.column(strata)),
        "test": None if strata is None else _strings(test.column(strata)),
    }

    audited: list[FacetResult] = []
    skipped: list[SkippedFacet] = []
    for facet in facets:
        in_d = {part: facet.rows(groups[part]) for part in groups}
        sizes = {
            f"{part}_{side}": int(mask.sum() if side == "d" else (~mask).sum())
            for part, mask in in_d.items()
            for side in ("d", "a")
        }
        small = [s for s in ("test_d", "test_a") if sizes[s] < min_group]
        if small:
            which = "the facet" if small[0] == "test_d" else "the rest"
            reason = (
                f"{which} has {sizes[small[0]]} rows in the test split, fewer than "
                f"min_group {min_group}"
            )
            if facet.explicit:
                raise DataError(
                    f"fairness audit: facet {facet.column}={facet.value}: {reason}; "
                    "lower min_group or audit the whole column"
                )
            skipped.append(SkippedFacet(facet.column, facet.value, sizes, reason))
            continue
        if regression:
            counterpart, how = predicted, "not made: a regression model has no classes to flip"
        elif flip == "neighbours":
            counterpart, how = _neighbours(
                predictor, test, facet, in_d["test"], predicted, outcome_positive, neighbours
            )
        else:
            counterpart, how = _counterfactual(
                predictor, test, facet, in_d["test"], groups["test"], predicted
            )
        tallies = {
            "train": Tally.of(
                in_d["train"], truth["train"], positive=outcome_positive,
                classes=outcome_classes, strata=layers["train"],
            ),
            "test": Tally.of(
                in_d["test"], truth["test"], positive=outcome_positive,
                classes=outcome_classes, predicted=predicted, counterpart=counterpart,
                strata=layers["test"],
            ),
        }  # fmt: skip
        rng = np.random.default_rng((seed, zlib.crc32(f"{facet.column}={facet.value}".encode())))
        draws = {
            part: t.resample(bootstrap, rng) if bootstrap else None for part, t in tallies.items()
        }
        values: dict[str, MetricValue] = {}
        for key in chosen:
            metric = BIAS_METRICS[key]
            if metric.stage == "overall":
                continue
            part = "train" if metric.stage == "pre-training" else "test"
            values[key] = _value(
                metric, tallies[part], draws[part], confidence, sizes, part,
                how if key == "FT" else None,
            )  # fmt: skip
        rates = {
            side: {
                name: _number(float(rate[index]))
                for name, rate in facet_rates(tallies["test"]).items()
            }
            for side, index in (("d", 1), ("a", 0))
        }
        audited.append(FacetResult(facet.column, facet.value, sizes, values, rates, how))

    overall: dict[str, MetricValue] = {}
    if "GE" in chosen:
        everyone = Tally.of(
            np.zeros(test.num_rows, dtype=bool), truth["test"], positive=outcome_positive,
            classes=outcome_classes, predicted=predicted,
        )  # fmt: skip
        rng = np.random.default_rng((seed, zlib.crc32(b"GE")))
        ge = replace(BIAS_METRICS["GE"], compute=lambda t: generalized_entropy(t, alpha))
        overall["GE"] = _value(
            ge, everyone, everyone.resample(bootstrap, rng) if bootstrap else None,
            confidence, {"test_d": test.num_rows, "test_a": 0}, "test",
            None if alpha == 2 else f"alpha = {alpha:g}",
        )  # fmt: skip
    if not audited:
        notes.append(f"no facet has {min_group} rows in the test split on both sides")
    return FairnessAudit(
        model=record.ref,
        dataset=version.ref,
        task=task,
        positive=favourable,
        classes=classes,
        sensitive=tuple(names),
        strata=strata,
        min_group=min_group,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        facets=tuple(audited),
        skipped=tuple(skipped),
        overall=overall,
        notes=tuple(notes),
    )


def _metrics(metrics: Sequence[str] | None, regression: bool, model: str) -> tuple[str, ...]:
    if metrics is None:
        return tuple(k for k, m in BIAS_METRICS.items() if not (regression and m.classifier_only))
    for key in metrics:
        if key not in BIAS_METRICS:
            raise SpecError(
                f"fairness audit: metric {key!r} is not one of {', '.join(BIAS_METRICS)}"
            )
        if regression and BIAS_METRICS[key].classifier_only:
            raise SpecError(
                f"fairness audit: metric {key!r} needs a classifier; {model} is a "
                "regression model (only CI applies to it)"
            )
    return tuple(k for k in BIAS_METRICS if k in metrics)


def _positive(positive: str | None, classes: tuple[str, ...], model: str) -> str:
    if positive is None:
        if len(classes) == 2:
            return classes[1]
        raise SpecError(
            f"fairness audit: positive: {model} has {len(classes)} classes "
            f"({', '.join(classes)}); name the favourable one"
        )
    if str(positive) not in classes:
        raise SpecError(
            f"fairness audit: positive class {positive!r} is not a class of {model}; "
            f"expected one of {', '.join(classes)}"
        )
    return str(positive)


def _facets(
    sensitive: Sequence[str] | None,
    declared: Sequence[str],
    columns: Sequence[str],
    intersections: bool,
) -> list[_Facet]:
    """The facets asked for: (column, None) for every value, or (column, value)."""
    wanted = list(declared) if sensitive is None else list(sensitive)
    if isinstance(sensitive, str):
        wanted = [sensitive]
    if not wanted:
        raise SpecError(
            "fairness audit: no sensitive column; mark one in mlcycle.yaml "
            "(roles: {column: sensitive}) or name it (sensitive=['column'])"
        )
    asked: list[tuple[str, str | None]] = []
    for entry in wanted:
        column, _, value = entry.partition("=") if entry not in columns else (entry, "", "")
        if column not in columns:
            raise DataError(
                f"fairness audit: sensitive column {column!r} is not in the data; "
                f"it has {', '.join(columns)}"
            )
        asked.append((column, value if value else None))
    facets: list[_Facet] = [
        _Facet((column, ), (value, ), True) for column, value in asked if value is not None
    ]  # fmt: skip
    whole = list(dict.fromkeys(column for column, value in asked if value is None))
    facets += [_Facet((column,), (), False) for column in whole]
    if intersections:
        facets += [_Facet(pair, (), False) for pair in itertools.combinations(whole, 2)]
    return facets


def _expand(facets: list[_Facet], groups: Mapping[str, Strings], dataset: str) -> list[_Facet]:
    """Whole columns (and pairs) made a facet per value; explicit values checked to exist."""
    expanded: list[_Facet] = []
    for facet in facets:
        if facet.explicit:
            column, value = facet.columns[0], facet.values[0]
            have = sorted(set(groups[column].tolist()))
            if value not in have:
                raise DataError(
                    f"fairness audit: column {column!r} has no value {value!r} in the test "
                    f"split of {dataset}; it has {', '.join(repr(v) for v in have)}"
                )
            expanded.append(facet)
            continue
        combos = pd.DataFrame({c: groups[c] for c in facet.columns}).drop_duplicates()
        for row in sorted(combos.itertuples(index=False, name=None)):
            expanded.append(_Facet(facet.columns, tuple(str(v) for v in row), False))
    return expanded


def _strings(column: Any) -> Strings:
    """Values as strings, missing ones as MISSING_GROUP (as monitoring groups them)."""
    values = pd.Series(column.to_pandas() if hasattr(column, "to_pandas") else column)
    out = np.asarray(values.astype(str), dtype=object)
    out[values.isna().to_numpy()] = MISSING_GROUP
    return out


def _groups(table: pa.Table, names: Sequence[str]) -> dict[str, Strings]:
    return {name: _strings(table.column(name)) for name in names}


def _counterfactual(
    predictor: Predictor,
    test: pa.Table,
    facet: _Facet,
    in_d: NDArray[np.bool_],
    groups: Mapping[str, Strings],
    predicted: Strings,
) -> tuple[Strings, str]:
    """Each row's counterpart's predicted class, and how the twins were made."""
    read = [c for c in facet.columns if c in predictor.input_names]
    if not read:
        unread = " and ".join(repr(c) for c in facet.columns)
        return predicted, (
            f"the model does not read {unread}: each twin gets the row's own answer, "
            "so FT is 0 by construction"
        )
    rest = np.flatnonzero(~in_d)
    combos = pd.DataFrame({c: groups[c][rest] for c in facet.columns})
    common = combos.value_counts(sort=True).index[0]  # the most common values in a
    common = common if isinstance(common, tuple) else (common,)
    source = int(rest[np.flatnonzero((combos.to_numpy() == np.asarray(common)).all(axis=1))[0]])
    rows = test.filter(in_d).select(predictor.input_names)
    for column in read:
        twin = test.column(column).take([source] * rows.num_rows)
        rows = rows.set_column(rows.column_names.index(column), column, twin)
    answer = predictor.predict(rows)
    counterpart = predicted.copy()
    counterpart[in_d] = np.asarray(answer.labels, dtype=object).astype(str)
    shown = ", ".join(f"{c}={v!r}" for c, v in zip(facet.columns, common, strict=True))
    return counterpart, (
        f"each row of d is answered again with {shown} (the most common in a) by the "
        f"version's ONNX graph, which reads {', '.join(read)}"
    )


def _neighbours(
    predictor: Predictor,
    test: pa.Table,
    facet: _Facet,
    in_d: NDArray[np.bool_],
    predicted: Strings,
    positive: str,
    k: int,
) -> tuple[Strings, str]:
    """Each row of d's counterpart: the majority answer of its k nearest rows of a."""
    from sklearn.neighbors import NearestNeighbors

    columns = [c for c in predictor.input_names if c not in facet.columns]
    rest = np.flatnonzero(~in_d)
    if not columns:
        raise SpecError(
            "fairness audit: flip 'neighbours' needs inputs other than the facet's columns"
        )
    if len(rest) < k:
        raise DataError(
            f"fairness audit: flip 'neighbours': the rest of {facet.column}={facet.value} "
            f"has {len(rest)} rows, fewer than neighbours {k}"
        )
    blocks = []
    for name in columns:
        column = test.column(name)
        if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
            raise SpecError(
                f"fairness audit: flip 'neighbours' compares table rows; input {name!r} "
                "is an image: use flip 'counterfactual'"
            )
        values = column.to_pandas()
        if (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or (pa.types.is_boolean(column.type))
        ):
            numbers = values.astype(float)
            numbers = numbers.fillna(numbers.mean())
            spread = numbers.std(ddof=0)
            blocks.append(((numbers - numbers.mean()) / (spread or 1.0)).to_numpy()[:, None])
        else:
            blocks.append(pd.get_dummies(values.astype(str)).to_numpy(dtype=float))
    points = np.hstack(blocks)
    _, nearest = NearestNeighbors(n_neighbors=k).fit(points[rest]).kneighbors(points[in_d])
    votes = (predicted[rest][nearest] == positive).mean(axis=1) > 0.5
    counterpart = predicted.copy()
    counterpart[in_d] = np.where(votes, positive, f"not {positive}")
    return counterpart, (
        f"each row of d is paired with the majority answer of its {k} nearest rows of a "
        f"(Euclidean, on {len(columns)} inputs: numbers standardised, categories one-hot)"
    )


def _number(value: float) -> float | None:
    return value if np.isfinite(value) else None


def _value(
    metric: BiasMetric,
    tally: Tally,
    draws: Tally | None,
    confidence: float,
    sizes: Mapping[str, int],
    part: str,
    note: str | None,
) -> MetricValue:
    value = _number(float(metric.compute(tally)))
    low = high = None
    undefined = 0
    if draws is not None:
        resampled = np.asarray(metric.compute(draws), dtype=np.float64)
        defined = resampled[np.isfinite(resampled)]
        undefined = int(resampled.size - defined.size)
        if defined.size:
            tail = (1 - confidence) / 2
            low, high = (float(q) for q in np.quantile(defined, [tail, 1 - tail]))
    if value is None and note is None:
        note = "undefined on these rows: a denominator is 0 (see the definition)"
    return MetricValue(
        key=metric.key,
        value=value,
        low=low,
        high=high,
        rows_d=sizes[f"{part}_d"],
        rows_a=sizes[f"{part}_a"],
        split=part,
        undefined_resamples=undefined,
        note=note,
    )
