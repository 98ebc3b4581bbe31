"""Per-prediction explanations of a version, and the HTML sections of every explainability result.

:func:`explain` attributes each row's output to its raw input columns:

* ``method="ig"``: Integrated Gradients on the version's PyTorch graph
  (:mod:`~mlcycle.audit._ig`), Gauss-Legendre quadrature, from a baseline
  row; the completeness error of each row is reported.
* ``method="shap"``: SHAP's permutation explainer on the ONNX graph
  (:mod:`~mlcycle.audit._agnostic`), for every version, including the ones
  without PyTorch weights (compressed variants); attributions sum to
  ``f(x) - E[f]`` over background rows.

What is attributed: for a classifier, the *probability* of the target class
(the predicted class of each row unless ``target`` names one); for
regression, the predicted value in the target's units.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._html import esc, fmt, section, table
from mlcycle.audit._importance import ImportanceResult, VersionData, load_version
from mlcycle.errors import DataError, SpecError

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.evaluate._figures import Figures
    from mlcycle.project import Project

__all__ = [
    "DEFAULT_PERMUTATIONS",
    "DEFAULT_ROWS",
    "DEFAULT_STEPS",
    "MAX_STEPS",
    "METHODS",
    "TOLERANCE",
    "Explanation",
    "RowAttribution",
    "explain",
    "html_sections",
]

METHODS = ("ig", "shap")
# IG by default: every row starts with DEFAULT_STEPS Gauss-Legendre nodes, and a
# row whose relative completeness error is above TOLERANCE is integrated again
# with twice as many, up to MAX_STEPS. Measured on every test row of a
# breast_cancer MLP, a digits MLP and a digits CNN (bench/explain_completeness.py):
# at 256 fixed nodes the median relative error is 4e-4, 1e-4 and 4e-4 but the worst
# rows reach 2.4e-3, 1.9e-3 and 3.4e-3 (a ReLU network's gradient jumps along the
# path: the error falls as 1/steps there, not faster); refined, every row is within.
# A row can stay above TOLERANCE at MAX_STEPS: one whose attributions nearly cancel
# (large parts, a small f(x) - f(baseline)); its error is reported as it is.
DEFAULT_STEPS = 128
MAX_STEPS = 8192
TOLERANCE = 1e-3
DEFAULT_PERMUTATIONS = 10  # SHAP: permutations of the features per row
DEFAULT_ROWS = 5  # rows of the test split explained when none are given
BACKGROUND_ROWS = 100  # SHAP: training rows E[f] is taken over


@dataclass(frozen=True)
class RowAttribution:
    """One explained row.

    Attributes:
        index: the row's position in the test split, or None for a given row.
        target: the class whose probability is attributed, or the target column (regression).
        output: f(x), the attributed quantity on the row.
        reference: f(baseline) (IG) or E[f] over the background rows (SHAP).
        attributions: per raw input column; an image column holds its pixels' sum.
        heatmap: per pixel attributions of the image column (H x W), or None.
        error: sum(attributions) - (output - reference).
        relative_error: |error| / |output - reference|; None where that difference is 0.
        steps: IG: the Gauss-Legendre nodes this row was integrated with;
            SHAP: the feature permutations.
    """

    index: int | None
    target: str
    output: float
    reference: float
    attributions: dict[str, float]
    heatmap: tuple[tuple[float, ...], ...] | None
    error: float
    relative_error: float | None
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "target": self.target,
            "output": self.output,
            "reference": self.reference,
            "attributions": dict(self.attributions),
            "heatmap": [list(r) for r in self.heatmap] if self.heatmap is not None else None,
            "completeness_error": self.error,
            "relative_completeness_error": self.relative_error,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class Explanation:
    """Attributions of some rows of one version, by one method.

    ``quantity`` says what was attributed (``probability`` or ``value``);
    ``reference`` what the attributions are relative to (``baseline``: f of
    the baseline row; ``expectation``: E[f] over ``background`` training
    rows). ``steps``: Gauss-Legendre nodes (IG; with ``adaptive``, the nodes
    every row starts with, doubled up to ``max_steps`` for a row whose relative
    completeness error is above ``tolerance``) or feature permutations (SHAP).
    """

    model: str
    method: str
    quantity: str
    reference: str
    steps: int
    adaptive: bool
    max_steps: int
    tolerance: float | None
    baseline: dict[str, Any]
    background: int
    columns: tuple[str, ...]
    image: str | None
    rows: tuple[RowAttribution, ...]
    seed: int

    @property
    def max_relative_error(self) -> float | None:
        values = [r.relative_error for r in self.rows if r.relative_error is not None]
        return max(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "attributions",
            "model": self.model,
            "method": self.method,
            "quantity": self.quantity,
            "reference": self.reference,
            "steps": self.steps,
            "adaptive": self.adaptive,
            "max_steps": self.max_steps,
            "tolerance": self.tolerance,
            "baseline": self.baseline,
            "background_rows": self.background,
            "columns": list(self.columns),
            "image": self.image,
            "seed": self.seed,
            "max_relative_completeness_error": self.max_relative_error,
            "rows": [r.to_dict() for r in self.rows],
        }


def _rows(data: VersionData, rows: Any) -> tuple[dict[str, np.ndarray[Any, Any]], list[int | None]]:
    """Validated feeds of the rows to explain, and their test split positions."""
    predictor = data.predictor()
    test = data.splits["test"]
    if rows is None:
        rows = list(range(min(DEFAULT_ROWS, test.num_rows)))
    if isinstance(rows, str | os.PathLike):
        from mlcycle.monitor._window import read_table_file

        rows = read_table_file(Path(rows), "rows")
    if isinstance(rows, Sequence) and rows and all(isinstance(i, int) for i in rows):
        bad = [i for i in rows if not 0 <= i < test.num_rows]
        if bad:
            raise SpecError(
                f"rows: index {bad[0]} is not a row of the test split (0 to {test.num_rows - 1})"
            )
        positions: list[int | None] = list(rows)
        return dict(predictor.feeds(test.take(list(rows)))), positions
    try:
        feeds = dict(predictor.feeds(rows))
    except DataError as exc:
        raise DataError(f"rows: {exc}") from None
    return feeds, [None] * len(next(iter(feeds.values())))


def _targets(data: VersionData, target: str | None, predicted: np.ndarray[Any, Any]) -> list[int]:
    classes = [str(c) for c in data.signature.get("classes") or []]
    if target is None:
        return [int(i) for i in predicted]
    if str(target) not in classes:
        raise SpecError(
            f"target: {target!r} is not a class of {data.record.ref}; expected one of {', '.join(classes)}"
        )
    return [classes.index(str(target))] * len(predicted)


def _baseline_feeds(data: VersionData, baseline: Any) -> dict[str, np.ndarray[Any, Any]] | None:
    """The user's baseline row as feeds, or None for the training mean/mode."""
    if isinstance(baseline, str):
        if baseline != "mean":
            raise SpecError(
                f"baseline: {baseline!r} is not 'mean' (training mean and mode) "
                "or a row (a mapping of every input column to a value)"
            )
        return None
    if not isinstance(baseline, Mapping):
        raise SpecError(
            f"baseline: a {type(baseline).__name__} is not 'mean' or a row "
            "(a mapping of every input column to a value)"
        )
    names = [spec["name"] for spec in data.signature["inputs"]]
    missing = [n for n in names if n not in baseline]
    if missing:
        raise SpecError(
            f"baseline: the row lacks column {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f"; a baseline row gives every input column: {', '.join(names)}"
        )
    try:
        return dict(data.predictor().feeds([dict(baseline)]))
    except DataError as exc:
        raise SpecError(f"baseline: {exc}") from None


def explain(
    project: Project,
    ref: str,
    rows: Any = None,
    *,
    method: str = "auto",
    baseline: str | Mapping[str, Any] = "mean",
    steps: int | None = None,
    target: str | None = None,
    seed: int = 0,
) -> Explanation:
    """Attribute the predictions of version ``ref`` on ``rows`` to their raw input columns.

    Args:
        rows: positions in the test split (a list of ints), rows (an Arrow
            table, a DataFrame, a list of records, a mapping of columns) or
            the path of a CSV/Parquet file of them; default: the first
            :data:`DEFAULT_ROWS` test rows.
        method: ``ig`` (Integrated Gradients on the PyTorch graph),
            ``shap`` (SHAP's permutation explainer on the ONNX graph: works
            for versions without PyTorch weights, a gbm's trees included) or
            ``auto``: ``ig`` where the version has PyTorch weights, else ``shap``.
        baseline: ``mean`` (IG: training mean of each number, most frequent
            category, mean image; SHAP: :data:`BACKGROUND_ROWS` training
            rows) or one row giving every input column.
        steps: IG: Gauss-Legendre nodes (default :data:`DEFAULT_STEPS`);
            SHAP: feature permutations per row (default :data:`DEFAULT_PERMUTATIONS`).
        target: classifiers: the class whose probability is attributed
            (default: each row's predicted class). Regression: must be None.
        seed: SHAP's permutations and background sample.

    Raises:
        SpecError: an unknown method, ``steps`` < 1, a bad baseline or
            target, IG on a version without PyTorch weights.
        DataError: rows missing an input column or holding unusable values.
        NotFoundError: no such version.

    Example (in a project where ``cancer`` is registered)::

        result = explain(project, "cancer@champion", rows=[0, 1])
        result.rows[0].attributions["worst_area"], result.max_relative_error
    """
    if method not in (*METHODS, "auto"):
        raise SpecError(f"method: {method!r} is not one of {', '.join(METHODS)}, auto")
    if steps is not None and steps < 1:
        raise SpecError(f"steps: {steps} is not >= 1")
    data = load_version(project, ref)
    if method == "auto":
        method = "ig" if data.has_torch else "shap"
    if method == "ig" and not data.has_torch:
        why = (
            "a gbm model: LightGBM trees have no gradients"
            if "lightgbm.txt" in data.files
            else "a compressed variant?"
        )
        raise SpecError(
            f"method: 'ig' needs PyTorch weights and {data.record.ref} has none "
            f"({why}); use method 'shap' (--method shap), which explains "
            "its ONNX graph"
        )
    regression = data.signature["task"] == "regression"
    if regression and target is not None:
        raise SpecError(
            f"target: {target!r} given for a regression model; "
            "its predicted value is attributed (leave target unset)"
        )
    given = _baseline_feeds(data, baseline)
    feeds, positions = _rows(data, rows)
    predictor = data.predictor()
    answer = predictor.run(feeds)
    targets = None
    if not regression:
        assert answer.probabilities is not None
        targets = _targets(data, target, answer.probabilities.argmax(axis=1))
    if method == "ig":
        return _explain_ig(project, data, feeds, positions, given, targets, steps)
    return _explain_shap(
        data, feeds, positions, given, targets, steps or DEFAULT_PERMUTATIONS, seed
    )


def _names(data: VersionData, targets: list[int] | None, n: int) -> list[str]:
    if targets is None:
        return [str(data.signature["target"])] * n
    classes = [str(c) for c in data.signature.get("classes") or []]
    return [classes[t] for t in targets]


def _relative(error: float, output: float, reference: float) -> float | None:
    change = abs(output - reference)
    return abs(error) / change if change > 0 else None


def _explain_ig(
    project: Project,
    data: VersionData,
    feeds: dict[str, np.ndarray[Any, Any]],
    positions: list[int | None],
    given: dict[str, np.ndarray[Any, Any]] | None,
    targets: list[int] | None,
    steps: int | None,
) -> Explanation:
    from mlcycle.audit._ig import (
        adaptive_integrated_gradients,
        continuous_inputs,
        integrated_gradients,
        load_network,
        mode_codes,
    )
    from mlcycle.train import encode

    net, layout = load_network(data.files, project.root)

    def parts(
        source: dict[str, np.ndarray[Any, Any]],
    ) -> tuple[Any, Any, Any]:
        numeric = (
            np.stack([np.asarray(source[c], dtype=np.float64) for c in layout.numeric], axis=1)
            if layout.numeric
            else None
        )
        codes = None
        if layout.categorical:
            codes = np.stack(
                [
                    np.array(
                        [
                            {v: i + 1 for i, v in enumerate(layout.vocabularies[c])}.get(str(s), 0)
                            for s in source[c]
                        ]
                    )
                    for c in layout.categorical
                ],
                axis=1,
            )
        image = source[layout.image] if layout.image is not None else None
        return numeric, codes, image

    inputs = continuous_inputs(net, layout, *parts(feeds))
    described: dict[str, Any]
    if given is not None:
        base = continuous_inputs(net, layout, *parts(given))
        described = {
            name: (
                "given image" if name == layout.image else (v.item() if hasattr(v, "item") else v)
            )
            for name, values in given.items()
            for v in [values[0]]
        }
    else:
        modes = mode_codes(data.splits["train"], layout)
        image = None
        if layout.image is not None:
            image = encode(data.splits["train"], layout).image
            assert image is not None
            image = image.astype(np.float64).mean(axis=0, keepdims=True)
        base = continuous_inputs(
            net,
            layout,
            np.array([layout.numeric_mean], dtype=np.float64) if layout.numeric else None,
            np.array([modes]) if modes else None,
            image,
        )
        described = dict(zip(layout.numeric, layout.numeric_mean, strict=True))
        described |= {
            c: layout.vocabularies[c][m - 1] for c, m in zip(layout.categorical, modes, strict=True)
        }
        if layout.image is not None:
            described[layout.image] = "per-pixel training mean"
    if steps is None:
        outcome = adaptive_integrated_gradients(
            net,
            layout,
            inputs,
            base,
            targets,
            start=DEFAULT_STEPS,
            limit=MAX_STEPS,
            tolerance=TOLERANCE,
        )
    else:
        outcome = integrated_gradients(net, layout, inputs, base, targets, steps)
    order = [spec["name"] for spec in data.signature["inputs"]]
    names = _names(data, targets, len(positions))
    rows = []
    for i, position in enumerate(positions):
        output, reference = float(outcome.outputs[i]), float(outcome.baseline_outputs[i])
        error = float(outcome.errors[i])
        heatmap = None
        if outcome.heatmaps is not None:
            heatmap = tuple(tuple(float(v) for v in line) for line in outcome.heatmaps[i])
        rows.append(
            RowAttribution(
                index=position,
                target=names[i],
                output=output,
                reference=reference,
                attributions={c: float(outcome.columns[c][i]) for c in order},
                heatmap=heatmap,
                error=error,
                relative_error=_relative(error, output, reference),
                steps=int(outcome.steps[i]),
            )
        )
    return Explanation(
        model=data.record.ref,
        method="ig",
        quantity="value" if targets is None else "probability",
        reference="baseline",
        steps=steps or DEFAULT_STEPS,
        adaptive=steps is None,
        max_steps=MAX_STEPS if steps is None else steps,
        tolerance=TOLERANCE if steps is None else None,
        baseline={k: (float(v) if isinstance(v, int | float) else v) for k, v in described.items()},
        background=0,
        columns=tuple(order),
        image=layout.image,
        rows=tuple(rows),
        seed=0,
    )


def _train_means(data: VersionData) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.compute as pc

    train = data.splits["train"]
    out = {}
    for spec in data.signature["inputs"]:
        if spec["kind"] in ("numeric", "boolean"):
            column = pc.cast(train.column(spec["name"]), pa.float64())
            mean = pc.mean(column).as_py()
            out[spec["name"]] = 0.0 if mean is None or math.isnan(mean) else float(mean)
    return out


def _explain_shap(
    data: VersionData,
    feeds: dict[str, np.ndarray[Any, Any]],
    positions: list[int | None],
    given: dict[str, np.ndarray[Any, Any]] | None,
    targets: list[int] | None,
    permutations: int,
    seed: int,
) -> Explanation:
    from mlcycle.audit._agnostic import FeatureMatrix, shap_permutation

    predictor = data.predictor()
    features = FeatureMatrix.of(data.signature, _train_means(data))
    if given is not None:
        background = features.encode(given)
        described = {
            spec["name"]: (
                "given image" if spec["kind"] == "image" else _plain(given[spec["name"]][0])
            )
            for spec in data.signature["inputs"]
        }
    else:
        train: pa.Table = data.splits["train"]
        rng = np.random.default_rng(seed)
        take = np.sort(rng.choice(train.num_rows, min(BACKGROUND_ROWS, train.num_rows), False))
        background = features.encode(dict(predictor.feeds(train.take(take))))
        described = {"rows": f"{len(take)} training rows (seed {seed})"}
    outcome = shap_permutation(
        predictor,
        features,
        features.encode(feeds),
        background,
        targets,
        permutations=permutations,
        seed=seed,
    )
    slices = features.slices()
    image = next((s["name"] for s in data.signature["inputs"] if s["kind"] == "image"), None)
    names = _names(data, targets, len(positions))
    rows = []
    for i, position in enumerate(positions):
        values = outcome.values[i]
        output, reference = float(outcome.outputs[i]), float(outcome.expected[i])
        error = float(values.sum() - (output - reference))
        heatmap = None
        if image is not None:
            spec = next(s for s in data.signature["inputs"] if s["name"] == image)
            grid = values[slices[image]].reshape(spec["shape"][1:])
            if grid.ndim == 3:
                grid = grid.sum(axis=0)
            heatmap = tuple(tuple(float(v) for v in line) for line in grid)
        rows.append(
            RowAttribution(
                index=position,
                target=names[i],
                output=output,
                reference=reference,
                attributions={c: float(values[s].sum()) for c, s in slices.items()},
                heatmap=heatmap,
                error=error,
                relative_error=_relative(error, output, reference),
                steps=permutations,
            )
        )
    return Explanation(
        model=data.record.ref,
        method="shap",
        quantity="value" if targets is None else "probability",
        reference="expectation" if given is None else "baseline",
        steps=permutations,
        adaptive=False,
        max_steps=permutations,
        tolerance=None,
        baseline=described,
        background=len(background),
        columns=tuple(slices),
        image=image,
        rows=tuple(rows),
        seed=seed,
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------------------- HTML


def html_sections(
    result: ImportanceResult | Explanation, figures: Figures | None = None
) -> list[str]:
    """HTML sections (``<section>`` strings) of an explainability result, for any report.

    ``figures``: the report's :class:`~mlcycle.evaluate._figures.Figures`, so
    that plotly.js is inlined once per page; a new one (inlining it in the
    first figure) when None.
    """
    from mlcycle.evaluate._figures import Figures

    figs = figures if figures is not None else Figures()
    if isinstance(result, ImportanceResult):
        return _importance_sections(result, figs)
    return _explanation_sections(result, figs)


def _importance_sections(result: ImportanceResult, figs: Figures) -> list[str]:
    columns = list(result.columns)
    shown = list(reversed(columns))  # plotly draws the first bar at the bottom
    values = [c.importance for c in shown]
    plus = [(c.high - c.importance) if c.high is not None else 0.0 for c in shown]
    minus = [(c.importance - c.low) if c.low is not None else 0.0 for c in shown]
    fig = figs.go.Figure(
        figs.go.Bar(
            x=values,
            y=[esc(c.column) for c in shown],
            orientation="h",
            marker_color="#1f77b4",
            error_x={"type": "data", "array": plus, "arrayminus": minus, "visible": True},
        )
    )
    fig.update_layout(
        title=f"Drop in {esc(result.metric)} when a column is shuffled",
        xaxis_title=f"{esc(result.metric)} drop (positive: the column matters)",
    )
    chart = figs.html(fig, height=max(320, 28 * len(columns) + 120))
    confidence = f"{1 - result.alpha:.0%}"
    rows = [
        [c.column, c.kind, fmt(c.importance), fmt(c.low), fmt(c.high), fmt(c.std)] for c in columns
    ]
    note = (
        f'<p class="note">{esc(result.model)} on the test split of {esc(result.dataset)} '
        f"({result.rows} rows): {esc(result.metric)} {fmt(result.score)} as is. Each column "
        f"shuffled {result.repeats} times (seed {result.seed}); the importance is the mean drop, "
        f"the interval a paired percentile bootstrap over the rows ({result.n_boot} resamples, "
        f"{confidence}).</p>"
    )
    body = chart + table(
        ["column", "kind", "importance", "low", "high", "std over repeats"], rows, text=(1,)
    )
    return [section("Permutation importance", body + note)]


_ROWS_SHOWN = 12  # explained rows drawn and tabulated in a report (to_dict keeps them all)


def _label(r: RowAttribution, i: int) -> str:
    return f"row {r.index}" if r.index is not None else f"given {i}"


def _explanation_sections(result: Explanation, figs: Figures) -> list[str]:
    if result.method == "ig":
        how = (
            f"Integrated Gradients on the PyTorch graph from the baseline row, Gauss-Legendre "
            f"quadrature: {result.steps} nodes"
            + (
                f", doubled up to {result.max_steps} for a row whose relative completeness "
                f"error is above {result.tolerance:g}"
                if result.adaptive and result.tolerance is not None
                else ""
            )
        )
    else:
        how = f"SHAP permutation explainer on the ONNX graph, {result.steps} permutations, " + (
            f"relative to E[f] over {result.background} training rows"
            if result.reference == "expectation"
            else "from the baseline row"
        )
    what = (
        "the probability of the target class"
        if result.quantity == "probability"
        else "the predicted value"
    )
    shown = list(enumerate(result.rows))[:_ROWS_SHOWN]
    tabular = [c for c in result.columns if c != result.image]
    parts = []
    if tabular and shown:
        fig = figs.go.Figure()
        for i, r in shown[:6]:
            fig.add_trace(
                figs.go.Bar(
                    x=[r.attributions[c] for c in tabular],
                    y=[esc(c) for c in tabular],
                    orientation="h",
                    name=esc(_label(r, i)),
                )
            )
        fig.update_layout(
            barmode="group",
            xaxis_title=f"attribution to {what}",
            yaxis={"autorange": "reversed"},
        )
        height = max(320, 14 * len(tabular) * min(len(shown), 6) + 120)
        parts.append(figs.html(fig, height=min(height, 1600)))
    maps = [(i, r) for i, r in shown if r.heatmap is not None][:6]
    if maps:
        titles = [esc(f"{_label(r, i)}: {r.target}") for i, r in maps]
        fig = figs.make_subplots(rows=1, cols=len(maps), subplot_titles=titles)
        limit = max(max(abs(v) for line in r.heatmap or () for v in line) for _, r in maps)
        for k, (_, r) in enumerate(maps, start=1):
            fig.add_trace(
                figs.go.Heatmap(
                    z=[list(line) for line in r.heatmap or ()],
                    colorscale="RdBu",
                    reversescale=True,
                    zmin=-(limit or 1.0),
                    zmax=limit or 1.0,
                    showscale=k == len(maps),
                ),
                row=1,
                col=k,
            )
            fig.update_yaxes(autorange="reversed", scaleanchor=f"x{k}", row=1, col=k)
        parts.append(figs.html(fig, height=340))
    summary = table(
        ["row", "target", "f(x)", "reference", "completeness error", "relative", "steps"],
        [
            [
                _label(r, i),
                r.target,
                fmt(r.output),
                fmt(r.reference),
                f"{r.error:.2e}",
                f"{r.relative_error:.2e}" if r.relative_error is not None else "—",
                str(r.steps),
            ]
            for i, r in shown
        ],
        text=(1,),
    )
    # one line per input column: its baseline value, then its attribution in each row
    per_column = table(
        ["column", "baseline", *(_label(r, i) for i, r in shown)],
        [
            [c, fmt(result.baseline.get(c, "")), *(fmt(r.attributions[c]) for _, r in shown)]
            for c in result.columns
        ],
        text=(1,),
    )
    more = (
        f" The report shows the first {_ROWS_SHOWN} of {len(result.rows)} rows."
        if len(result.rows) > _ROWS_SHOWN
        else ""
    )
    background = (
        f" Background: {esc(result.baseline['rows'])}." if "rows" in result.baseline else ""
    )
    note = (
        f'<p class="note">{esc(how)}; attributed: {esc(what)}. A category\'s attribution is '
        "summed over its encoding; an image column's is the sum of its pixel map. "
        "Completeness error: sum of attributions minus (f(x) minus the reference)."
        f"{background}{esc(more)}</p>"
    )
    title = (
        "Attributions (Integrated Gradients)" if result.method == "ig" else "Attributions (SHAP)"
    )
    return [section(title, "".join(parts) + summary + per_column + note)]
