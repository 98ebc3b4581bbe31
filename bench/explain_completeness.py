"""Integrated Gradients' completeness error by quadrature and step count (issue 18).

Trains small models in a throw-away project (breast_cancer MLP, digits MLP,
digits CNN; ``--fashion`` adds a Fashion-MNIST CNN), then explains every row of
each test split with ``mlcycle.audit.explain`` at fixed Gauss-Legendre step
counts, with Captum's trapezoid rule at 50 steps for comparison, and with the
default (128 nodes, refined per row up to 8192 while the relative error is
above 1e-3). For each: the median, 99th percentile and largest relative
completeness error |sum(attr) - (f(x) - f(b))| / |f(x) - f(b)| over the rows,
the share of rows within 1e-3, and the wall time. SHAP's permutation explainer
on the same graphs: the largest |sum(values) - (f(x) - E[f])|.

Usage::

    .venv/bin/python bench/explain_completeness.py [--epochs 8] [--fashion]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from typing import Any

import numpy as np

import mlcycle
from mlcycle.audit import explain
from mlcycle.audit._ig import continuous_inputs, load_network
from mlcycle.audit._importance import load_version
from mlcycle.train import train
from mlcycle.workflow import register


def _trapezoid(project: mlcycle.Project, ref: str, rows: list[int], steps: int) -> list[float]:
    """Relative errors of Captum's public riemann_trapezoid rule, from the same baseline."""
    import torch
    from captum.attr import IntegratedGradients

    from mlcycle.audit._ig import _Continuous
    from mlcycle.train import encode

    data = load_version(project, ref)
    net, layout = load_network(data.files, project.root)
    test = data.splits["test"].take(rows)
    enc = encode(test, layout)
    inputs = continuous_inputs(net, layout, enc.numeric, enc.categorical, enc.image)
    image = None
    if layout.image is not None:
        train_image = encode(data.splits["train"], layout).image
        assert train_image is not None
        image = train_image.astype(np.float64).mean(axis=0, keepdims=True)
    base = continuous_inputs(
        net,
        layout,
        np.array([layout.numeric_mean]) if layout.numeric else None,
        None,
        image,
    )
    model = _Continuous(net, layout)
    with torch.no_grad():
        out = model(*inputs)
        f_b = model(*base)
    targets = out.argmax(dim=1)
    baselines = tuple(b.expand_as(i) for b, i in zip(base, inputs, strict=True))
    attrs = IntegratedGradients(model).attribute(
        inputs, baselines=baselines, target=targets, n_steps=steps, method="riemann_trapezoid"
    )
    n = len(rows)
    total = sum(a.reshape(n, -1).sum(dim=1) for a in attrs)
    change = out[torch.arange(n), targets] - f_b[0, targets]
    assert isinstance(total, torch.Tensor)
    return list((abs(total - change) / abs(change)).detach().numpy())


def _summary(relative: list[float]) -> dict[str, float]:
    r = np.array([v for v in relative if v is not None])
    return {
        "median": float(np.median(r)),
        "p99": float(np.quantile(r, 0.99)),
        "max": float(r.max()),
        "within_1e-3": float(np.mean(r <= 1e-3)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--fashion", action="store_true")
    parser.add_argument("--shap-rows", type=int, default=20)
    args = parser.parse_args()
    models: list[tuple[str, str, dict[str, Any]]] = [
        ("cancer", "sklearn:breast_cancer", {}),
        ("digits", "sklearn:digits", {}),
        ("digits-cnn", "sklearn:digits", {"model.kind": "cnn", "model.channels": [16, 32]}),
    ]
    if args.fashion:
        models.append(("fashion-cnn", "fashion_mnist", {"model.kind": "cnn"}))
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as root,
        mlcycle.Project.init(root, name="bench") as project,
    ):
        for name, data, overrides in models:
            run = train(
                project, data=data, overrides={"max_epochs": args.epochs, **overrides}, quiet=True
            )
            register(project, run.run_id, name)
            ref = f"{name}@1"
            n = project.datasets.load_split(project.store.registry.get(ref).lineage["dataset"])[
                "test"
            ].num_rows
            rows = list(range(n))
            for label, steps in (("GL 32", 32), ("GL 128", 128), ("GL 256", 256), ("GL 512", 512)):
                start = time.perf_counter()
                result = explain(project, ref, rows, steps=steps)
                seconds = time.perf_counter() - start
                relative = [r.relative_error for r in result.rows if r.relative_error is not None]
                results.append(
                    {"model": name, "rule": label, "rows": n, "seconds": seconds}
                    | _summary(relative)
                )
            start = time.perf_counter()
            result = explain(project, ref, rows)
            seconds = time.perf_counter() - start
            relative = [r.relative_error for r in result.rows if r.relative_error is not None]
            steps_used = [r.steps for r in result.rows]
            results.append(
                {
                    "model": name,
                    "rule": "default (GL 128, refined)",
                    "rows": n,
                    "seconds": seconds,
                    "median_steps": float(np.median(steps_used)),
                    "max_steps": int(max(steps_used)),
                }
                | _summary(relative)
            )
            start = time.perf_counter()
            trapezoid = _trapezoid(project, ref, rows, 50)
            results.append(
                {
                    "model": name,
                    "rule": "trapezoid 50",
                    "rows": n,
                    "seconds": time.perf_counter() - start,
                }
                | _summary(trapezoid)
            )
            start = time.perf_counter()
            shap = explain(project, ref, rows[: args.shap_rows], method="shap")
            results.append(
                {
                    "model": name,
                    "rule": f"SHAP permutation ({shap.steps} permutations)",
                    "rows": len(shap.rows),
                    "seconds": time.perf_counter() - start,
                    "max_abs_additivity_error": max(abs(r.error) for r in shap.rows),
                }
            )
    print(f"{'model':12} {'rule':36} {'rows':>5} {'median':>9} {'p99':>9} {'max':>9} "
          f"{'<=1e-3':>7} {'s':>7}")  # fmt: skip
    for r in results:
        if "median" in r:
            print(
                f"{r['model']:12} {r['rule']:36} {r['rows']:5d} {r['median']:9.2e} "
                f"{r['p99']:9.2e} {r['max']:9.2e} {r['within_1e-3']:7.1%} {r['seconds']:7.2f}"
            )
        else:
            print(
                f"{r['model']:12} {r['rule']:36} {r['rows']:5d} additivity error "
                f"{r['max_abs_additivity_error']:.1e} {r['seconds']:25.2f}"
            )
    print(json.dumps({"machine": platform.processor() or platform.machine(), "results": results}))


if __name__ == "__main__":
    main()
