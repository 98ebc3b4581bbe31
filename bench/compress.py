"""Compression on this machine: quantization, pruning, distillation, ``--auto`` (issue 17).

Each section trains its model(s) in a throw-away project, registers them and
runs ``mlcycle.compress`` exactly as ``mlcycle compress`` does; the ratios
come from one measurement run each (variants interleaved on the same ORT
threads, see ``mlcycle.compress._measure``).

Sections (``--only`` picks some):

* ``digits-int8``: sklearn digits, the default MLP; dynamic and static int8 at
  batch 256. Bar: <= 30% of the fp32 size, drop <= 0.5 points, >= 1.5x faster.
* ``fashion-int8``: Fashion-MNIST CNN (default spec); static QDQ and dynamic
  int8 at batch 64. Bar: static >= 2x faster, drop <= 0.5; dynamic measured
  and rejected by ``--auto`` when slower.
* ``fashion-prune``: the same CNN, 50% of its channels pruned and fine-tuned.
  Bar: >= 2x fewer parameters, >= 1.5x faster at batch 64, drop <= 1 point.
* ``fashion-distill``: a large CNN teacher, a small CNN student, 3 seeds:
  distilled minus alone, with its paired interval (the bar is honesty), at
  the default T and alpha; ``bench/distill_tune.py`` tunes them first.
* ``auto``: ``--auto`` on breast_cancer, digits and the Fashion CNN: what it
  chose and why.

Usage::

    .venv/bin/python bench/compress.py [--only digits-int8,auto] [--images 5000] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from typing import Any

import mlcycle
from mlcycle.compress import compress, distill
from mlcycle.train import train
from mlcycle.workflow import register

SECTIONS = ("digits-int8", "fashion-int8", "fashion-prune", "fashion-distill", "auto")


def variants_table(result: Any) -> list[dict[str, Any]]:
    original = result.variants[0]
    rows = []
    for v in result.variants:
        speed = (
            original.latency_ms[result.batch] / v.latency_ms[result.batch]
            if result.batch in v.latency_ms
            else None
        )
        rows.append(
            {
                "variant": v.method,
                "verdict": v.verdict,
                "accuracy": v.test.get("accuracy"),
                "drop_points": None
                if v.test.get("accuracy") is None
                else 100 * (original.test["accuracy"] - v.test["accuracy"]),
                "size_ratio": v.size_bytes / original.size_bytes if v.size_bytes else None,
                "ms_batch1": v.latency_ms.get(1),
                f"ms_batch{result.batch}": v.latency_ms.get(result.batch),
                "speedup": speed,
                "reason": v.reason or v.error,
            }
        )
    return rows


def show(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n## {title}")
    for row in rows:
        cells = []
        for key, value in row.items():
            if isinstance(value, float):
                value = f"{value:.4g}"
            cells.append(f"{key}={value}")
        print("  " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--images", type=int, default=5000, help="Fashion-MNIST images")
    parser.add_argument("--epochs", type=int, default=10, help="max epochs of the Fashion CNNs")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    wanted = [s for s in args.only.split(",") if s]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown {unknown}; sections: {', '.join(SECTIONS)}")
    out: dict[str, Any] = {
        "bench": "compress",
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "sections": {},
    }
    root = tempfile.mkdtemp(prefix="bench-compress-")
    started = time.monotonic()
    with mlcycle.Project.init(root, name="bench") as project:
        need_fashion = any(s.startswith("fashion") or s == "auto" for s in wanted)
        digits = train(project, data="sklearn:digits", quiet=True)
        register(project, digits.run_id, "digits")
        if need_fashion:
            ref = project.datasets.add(f"fashion-mnist:{args.images}").version.ref
            cnn = train(
                project, data=ref, model="cnn", overrides={"max_epochs": args.epochs}, quiet=True
            )
            register(project, cnn.run_id, "fashion")
        if "digits-int8" in wanted:
            r = compress(
                project,
                "digits@1",
                methods=["dynamic-int8", "static-int8"],
                batch=256,
                register=False,
            )
            out["sections"]["digits-int8"] = variants_table(r)
            show("digits MLP, int8 at batch 256", out["sections"]["digits-int8"])
        if "fashion-int8" in wanted:
            r = compress(project, "fashion@1", auto=True, batch=64, register=False)
            out["sections"]["fashion-int8"] = {"chosen": r.chosen, "variants": variants_table(r)}
            show(f"Fashion-MNIST CNN, --auto at batch 64 (chosen {r.chosen})", variants_table(r))
        if "fashion-prune" in wanted:
            from mlcycle.compress._prune import prune_run  # issue 17's pruning

            pruned = prune_run(project, cnn.run_id, ratio=0.5)
            out["sections"]["fashion-prune"] = {"pruned_run": getattr(pruned, "run_id", None)}
            version = register(project, pruned.run_id, "fashion-pruned")
            r = compress(project, version.ref, methods=["static-int8"], batch=64, register=False)
            base = compress(project, "fashion@1", methods=["static-int8"], batch=64, register=False)
            out["sections"]["fashion-prune"].update(
                {
                    "parameters_before": cnn.summary["parameters"],
                    "parameters_after": project.runs.get(pruned.run_id).summary["parameters"],
                    "accuracy_before": cnn.test["accuracy"],
                    "accuracy_after": project.runs.get(pruned.run_id).summary["test"]["accuracy"],
                    "ms_batch64_before": base.variants[0].latency_ms[64],
                    "ms_batch64_after": r.variants[0].latency_ms[64],
                    "note": "latencies from two measurement runs, each interleaved",
                }
            )
            show(
                "Fashion-MNIST CNN, 50% channels pruned + fine-tuned",
                [out["sections"]["fashion-prune"]],
            )
        if "fashion-distill" in wanted:
            teacher = train(
                project,
                data=ref,
                model="cnn",
                overrides={
                    "max_epochs": args.epochs,
                    "model.channels": [64, 128],
                    "model.hidden": [256],
                },
                quiet=True,
            )
            register(project, teacher.run_id, "fashion-teacher")
            d = distill(
                project,
                "fashion-teacher@1",
                student={
                    "model.kind": "cnn",
                    "model.channels": [8, 16],
                    "model.hidden": [32],
                    "max_epochs": args.epochs,
                },
                seeds=range(args.seeds),
            )
            out["sections"]["fashion-distill"] = d.to_dict()
            show("Fashion-MNIST distillation (difference: distilled - alone)", [d.difference])
        if "auto" in wanted:
            project.datasets.add("sklearn:breast_cancer")
            cancer = train(project, data="breast_cancer", quiet=True)
            register(project, cancer.run_id, "cancer")
            chosen = {}
            for name, batch in (("cancer@1", 64), ("digits@1", 64), ("fashion@1", 64)):
                r = compress(project, name, auto=True, batch=batch, register=False)
                chosen[name] = {"chosen": r.chosen, "variants": variants_table(r)}
                show(f"--auto {name} at batch {batch}: chose {r.chosen}", variants_table(r))
            out["sections"]["auto"] = chosen
    out["seconds"] = time.monotonic() - started
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
