"""Attribution drift: the ranking of the inputs by what they contribute, window against reference.

Each side's global attribution of an input is the mean absolute baseline
Shapley value (:mod:`mlcycle.registry._shapley`, on the ONNX graph) over a
seeded sample of its rows, all explained against the same baseline row (the
training middle). The window's ranking is scored by its normalised
discounted cumulative gain with the reference's attributions as relevance:

    nDCG = sum_i a_ref(f_i) / log2(i + 1)  /  sum_i a_ref(g_i) / log2(i + 1)

where ``f_1, f_2, ...`` are the inputs in the window's order (most
attributed first) and ``g_1, g_2, ...`` in the reference's own. 1 means the
same ranking; swapping two inputs of almost equal weight costs almost
nothing, while an input that mattered little rising to the top costs much.
Below ``monitor.attribution.min_ndcg`` (0.9, SageMaker Clarify's rule) it
alerts: the model now leans on other inputs than it did, which drift tests
of each input alone do not show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import DataError
from mlcycle.registry._shapley import baseline_row, shapley_values

if TYPE_CHECKING:
    from mlcycle.monitor._window import Reference, Window
    from mlcycle.registry import Predictor
    from mlcycle.spec import AttributionSpec

__all__ = ["attribution_drift", "ndcg"]


def ndcg(reference: dict[str, float], current: dict[str, float]) -> float:
    """nDCG of ``current``'s ranking with ``reference``'s values as relevance (see the module).

    Example:
        >>> ndcg({"a": 3.0, "b": 1.0}, {"a": 0.9, "b": 0.1})
        1.0
        >>> round(ndcg({"a": 3.0, "b": 1.0}, {"a": 0.1, "b": 0.9}), 4)
        0.7967
    """
    names = list(reference)
    discount = 1.0 / np.log2(np.arange(2, len(names) + 2))
    ideal = np.sort(np.array([reference[n] for n in names]))[::-1]
    order = sorted(names, key=lambda n: (-current.get(n, 0.0), names.index(n)))
    gained = np.array([reference[n] for n in order])
    best = float((ideal * discount).sum())
    return 1.0 if best == 0 else float((gained * discount).sum() / best)


def _sample(rows: int, size: int, seed: int) -> np.ndarray[Any, Any]:
    if rows <= size:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))


def attribution_drift(
    predictor: Predictor,
    reference: Reference,
    window: Window,
    ood_document: dict[str, Any] | None,
    spec: AttributionSpec,
) -> dict[str, Any] | None:
    """The attribution rankings of both sides and their nDCG; ``None`` when off.

    A window whose inputs the graph cannot take (an image that was not
    logged) gets a ``skipped`` reason instead of figures.
    """
    if not spec.enabled:
        return None
    out: dict[str, Any] = {"min_ndcg": spec.min_ndcg, "permutations": spec.permutations}
    names = predictor.input_names
    try:
        validation = reference.validation.select(names)
        reference_feeds = predictor.feeds(
            validation.take(_sample(validation.num_rows, spec.rows, 0))
        )
        if window.feeds is not None:
            current = {n: window.feeds[n] for n in names}
        else:
            current = {n: window.inputs[n] for n in names}
        current_feeds = predictor.feeds(
            {n: a[_sample(window.n, spec.rows, 1)] for n, a in current.items()}
        )
    except (DataError, KeyError) as exc:
        return {**out, "skipped": f"the inputs cannot be explained: {exc}", "alert": None}
    baseline = baseline_row(predictor, ood_document)
    sides: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for side, feeds in (("reference", reference_feeds), ("current", current_feeds)):
        counts[side] = len(next(iter(feeds.values())))
        if counts[side] == 0:
            sides[side] = {}
            continue
        found = shapley_values(
            predictor, dict(feeds), baseline, permutations=spec.permutations, seed=0
        )
        sides[side] = dict(
            zip(found.features, np.abs(found.values).mean(axis=0).tolist(), strict=True)
        )
    decided = min(counts.values()) >= spec.min_rows
    score = ndcg(sides["reference"], sides["current"]) if decided else None
    return {
        **out,
        "rows": counts,
        "reference": sides["reference"],
        "current": sides["current"],
        "ndcg": score,
        "alert": None if score is None else score < spec.min_ndcg,
    }
