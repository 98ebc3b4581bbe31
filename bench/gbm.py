"""Gradient-boosted trees in mlcycle: overhead against LightGBM itself, and against the MLP (issue 19).

Three questions, each on the same dataset version's split (``breast_cancer``
from scikit-learn, and 2,000 rows of the demo's loan applications: eight
numeric features, a yes/no target, the "churn-like" table of the issue):

1. **Training overhead.** ``mlcycle.train._gbm.fit_gbm`` (mlcycle's features,
   its round callback recording train and validation loss, early stopping,
   the best round's trees moved to float32 thresholds) against LightGBM called
   directly (``lgb.Dataset`` + ``lgb.train`` with ``lgb.early_stopping``, the
   same parameters, the same matrices, the same threads). Arms interleaved,
   medians. The two must stop at the same round and answer identically on the
   test rows (checked). Bar: overhead <= 10%.
2. **The whole thing.** ``mlcycle.train.train(model="gbm")`` (load the split,
   fit, export the graph, evaluate with bootstrap intervals, write the report,
   record the run) and ``mlcycle.workflow.register`` (signature, parity on the
   test rows, reference, OOD detector, card), wall time. Bar on breast_cancer:
   test accuracy >= 0.95 and train + export + parity < 10 s.
3. **gbm against the MLP.** ``train(model="mlp")`` with the default spec on
   the same split: test accuracy and wall time, and what each registered
   graph costs ONNX Runtime (one thread, in process: the model's share of a
   served request) at 1 and 64 rows.

Usage::

    .venv/bin/python bench/gbm.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from mlcycle import Project
from mlcycle.demo._stream import loan_rows
from mlcycle.registry import Predictor
from mlcycle.train import train
from mlcycle.train._gbm import _params, feature_matrix, fit_gbm, gbm_options
from mlcycle.train._run import _prepare
from mlcycle.workflow import register


def _direct(params: dict[str, Any], prepared: Any, rounds: int, patience: int) -> lgb.Booster:
    """LightGBM as a user calls it: one validation set, LightGBM's own early stopping."""
    data = prepared.data
    layout = prepared.layout
    categorical = list(range(len(layout.numeric), len(layout.numeric) + len(layout.categorical)))
    train_set = lgb.Dataset(
        feature_matrix(data.train_x),
        label=data.train_y,
        categorical_feature=categorical or "auto",
        params={"verbosity": -1},
    )
    val_set = lgb.Dataset(feature_matrix(data.val_x), label=data.val_y, reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=rounds,
        valid_sets=[val_set],
        callbacks=[lgb.early_stopping(patience, verbose=False)],
    )


def _overhead(project: Project, ref: str, repeats: int) -> dict[str, Any]:
    spec = project.spec.with_overrides({"train.model.kind": "gbm"}).train
    prepared = _prepare(project, project.datasets.get(ref))
    options = gbm_options(spec.model)
    params = _params(spec, options, prepared.data, prepared.layout)
    params["metric"] = ["binary_logloss"]
    test_x = feature_matrix(prepared.data.val_x)  # checked on rows neither arm trains on
    times: dict[str, list[float]] = {"lightgbm": [], "mlcycle": []}
    checks: dict[str, Any] = {}
    for i in range(repeats + 1):  # the first round warms both up and is not timed
        order = ("lightgbm", "mlcycle") if i % 2 == 0 else ("mlcycle", "lightgbm")
        for arm in order:
            start = time.perf_counter()
            if arm == "lightgbm":
                booster = _direct(
                    params, prepared, options.n_estimators, options.early_stopping_rounds
                )
                elapsed = time.perf_counter() - start
                checks["lightgbm_rounds"] = booster.best_iteration
                checks["lightgbm_pred"] = booster.predict(
                    test_x, num_iteration=booster.best_iteration
                )
            else:
                fitted = fit_gbm(spec, prepared.layout, prepared.data)
                elapsed = time.perf_counter() - start
                checks["mlcycle_rounds"] = fitted.best_epoch + 1
                checks["mlcycle_pred"] = fitted.model.booster.predict(test_x)
            if i > 0:
                times[arm].append(elapsed)
    lgb_s = statistics.median(times["lightgbm"])
    ours_s = statistics.median(times["mlcycle"])
    return {
        "lightgbm_s": lgb_s,
        "mlcycle_s": ours_s,
        "overhead": ours_s / lgb_s - 1,
        "best_round_lightgbm": checks["lightgbm_rounds"],
        "best_round_mlcycle": checks["mlcycle_rounds"],
        "max_abs_pred_diff": float(np.abs(checks["lightgbm_pred"] - checks["mlcycle_pred"]).max()),
        "threads": params["num_threads"],
    }


def _whole(project: Project, ref: str, model: str) -> dict[str, Any]:
    start = time.perf_counter()
    outcome = train(project, data=ref, model=model)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    version = register(project, outcome.run_id, f"bench-{model}")
    registered = time.perf_counter() - start
    graph = project.artifacts.read_bytes(version.files["model.onnx"])
    predictor = Predictor(graph, version.signature, name=version.ref, threads=1)
    test = project.datasets.load_split(ref)["test"]
    latency = {}
    for batch in (1, 64):
        feeds = predictor.feeds(test.take([i % test.num_rows for i in range(batch)]))
        for _ in range(20):
            predictor.run(feeds)
        calls = []
        for _ in range(300):
            start = time.perf_counter()
            predictor.run(feeds)
            calls.append(time.perf_counter() - start)
        latency[batch] = statistics.median(calls) * 1000
    return {
        "ort_ms_batch1": latency[1],
        "ort_ms_batch64": latency[64],
        "onnx_kb": len(graph) / 1024,
        "accuracy": outcome.test["accuracy"],
        "roc_auc": outcome.test.get("roc_auc"),
        "train_s": trained,
        "register_s": registered,
        "total_s": trained + registered,
        "fit_s": outcome.summary["train_seconds"],
        "epochs": outcome.summary["epochs_run"],
        "parity_max_abs_diff": version.metrics["parity"]["max_abs_diff"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, Project.init(Path(folder), name="b") as project:
        refs = {
            "breast_cancer": project.datasets.add("sklearn:breast_cancer").version.ref,
            "loans": project.datasets.add(
                loan_rows(2000, changed=False, seed=0), name="loans", target="approved"
            ).version.ref,
        }
        for name, ref in refs.items():
            results[name] = {
                "overhead": _overhead(project, ref, args.repeats),
                "gbm": _whole(project, ref, "gbm"),
                "mlp": _whole(project, ref, "mlp"),
            }
    print(f"python {platform.python_version()}, lightgbm {lgb.__version__}")
    for name, r in results.items():
        o, g, m = r["overhead"], r["gbm"], r["mlp"]
        print(f"\n{name}")
        print(
            f"  fit: LightGBM {o['lightgbm_s'] * 1000:.1f} ms, mlcycle {o['mlcycle_s'] * 1000:.1f} ms"
            f" (overhead {o['overhead']:+.1%}); best round {o['best_round_lightgbm']} / "
            f"{o['best_round_mlcycle']}; max |p diff| {o['max_abs_pred_diff']:.1e}; "
            f"{o['threads']} thread(s)"
        )
        for arm, x in (("gbm", g), ("mlp", m)):
            print(
                f"  {arm}: test accuracy {x['accuracy']:.4f}, roc_auc {x['roc_auc']:.4f}; "
                f"train {x['train_s']:.2f} s (fit {x['fit_s']:.2f} s, {x['epochs']} "
                f"{'rounds' if arm == 'gbm' else 'epochs'}) + register {x['register_s']:.2f} s"
                f" = {x['total_s']:.2f} s; parity {x['parity_max_abs_diff']:.1e}"
            )
            print(
                f"       graph {x['onnx_kb']:.0f} KiB; ONNX Runtime (1 thread) "
                f"{x['ort_ms_batch1']:.3f} ms at 1 row, {x['ort_ms_batch64']:.3f} ms at 64 rows"
            )
        print(
            f"  gbm - mlp accuracy {g['accuracy'] - m['accuracy']:+.4f}; "
            f"gbm time / mlp time {g['total_s'] / m['total_s']:.3f}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
