"""Robustness on this machine: accuracy under FGSM and PGD, standard against adversarial training (issue 18).

For breast_cancer (the default MLP on 30 numeric columns) and digits (the
default MLP on 8x8 pixel images), trains in a throw-away project one model
with the default spec and one per adversarial-training attack
(``train.adversarial``: PGD and FGSM at ``--train-eps``, half of each batch
attacked), all with the same seed and epoch budget; registers each and runs
:func:`mlcycle.audit.robustness_audit` on its test split: clean accuracy,
accuracy under FGSM and PGD (L-infinity, ``--steps`` PGD steps from a seeded
random start) at each ``--eps``, and the share of attacked rows the version's
OOD detector flags. ``eps`` is in training standard deviations per column
(breast_cancer) and in units of the pixel range 0..16 (digits).

Usage::

    .venv/bin/python bench/robustness.py [--epochs 30] [--eps 0.05,0.1,0.25,0.5] [--seeds 0,1,2]
        [--only breast_cancer] [--train-attacks pgd,fgsm] [--html DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import mlcycle
from mlcycle._html import html_page, write_page
from mlcycle.audit import eps_key, robustness_audit
from mlcycle.evaluate._figures import Figures
from mlcycle.train import train
from mlcycle.workflow import register

DATASETS = {  # source: adversarial-training eps (std units for tables, pixel range for images)
    "breast_cancer": 0.25,
    "digits": 0.1,
}


def floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(DATASETS), help="datasets, comma-separated")
    parser.add_argument("--epochs", type=int, default=30, help="max_epochs of every model")
    parser.add_argument("--eps", type=floats, default=(0.05, 0.1, 0.25, 0.5))
    parser.add_argument("--steps", type=int, default=10, help="PGD steps of the audit")
    parser.add_argument("--train-steps", type=int, default=3, help="PGD steps in training")
    parser.add_argument("--train-attacks", default="pgd,fgsm")
    parser.add_argument("--seeds", default="0", help="training and attack seeds, e.g. 0,1,2")
    parser.add_argument("--html", type=Path, default=None, help="write one report page here")
    args = parser.parse_args()

    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    sections: list[str] = []
    figures = Figures()
    with mlcycle.Project.init(tempfile.mkdtemp(prefix="robust-"), name="robust") as project:
        for dataset in args.only.split(","):
            train_eps = DATASETS[dataset]
            arms: list[tuple[str, dict[str, Any] | None]] = [("standard", None)]
            for attack in args.train_attacks.split(","):
                adversarial = {"attack": attack, "eps": train_eps, "ratio": 0.5}
                arms.append((f"{attack}-trained", adversarial | {"steps": args.train_steps}))
            for seed, (arm, adversarial) in (
                (int(seed), arm) for seed in args.seeds.split(",") for arm in arms
            ):
                overrides: dict[str, Any] = {
                    "max_epochs": args.epochs,
                    "seed": seed,
                    "evaluate.bootstrap": 50,
                }
                if adversarial is not None:
                    overrides["train.adversarial"] = adversarial
                t0 = time.perf_counter()
                outcome = train(
                    project,
                    data=f"sklearn:{dataset}",
                    overrides=overrides,
                    quiet=True,
                )
                train_s = time.perf_counter() - t0
                version = register(project, outcome.run_id, dataset)
                audit = robustness_audit(
                    project, version.ref, eps=args.eps, steps=args.steps, seed=seed
                )
                sections += [f"<h2>{dataset}: {arm}, seed {seed}</h2>"]
                sections += audit.html_sections(figures)
                record = audit.to_dict()
                results.append(
                    {
                        "dataset": dataset,
                        "arm": arm,
                        "seed": seed,
                        "train_eps": None if adversarial is None else train_eps,
                        "epochs_run": project.runs.get(outcome.run_id).summary.get("epochs_run"),
                        "train_s": round(train_s, 1),
                        "audit_s": round(record["seconds"], 1),
                        "rows": record["rows"],
                        "clean": record["clean"],
                        "attacks": record["attacks"],
                    }
                )
                show(results[-1], args.eps)
    summary(results, args.eps)
    if args.html is not None:
        page = html_page("Robustness (bench/robustness.py)", "", sections)
        write_page(args.html / "robustness.html", page)
        print(f"\nreport: {args.html / 'robustness.html'}")
    print(
        json.dumps(
            {
                "bench": "robustness",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "eps": list(args.eps),
                "steps": args.steps,
                "seconds": round(time.perf_counter() - started, 1),
                "results": results,
            }
        )
    )


def show(result: dict[str, Any], eps: tuple[float, ...]) -> None:
    clean = result["clean"]
    print(
        f"\n{result['dataset']} {result['arm']} seed {result['seed']} (train eps {result['train_eps']}, "
        f"{result['epochs_run']} epochs, {result['train_s']} s; audit {result['audit_s']} s "
        f"on {result['rows']} test rows)"
    )
    print(f"  clean            acc {clean['accuracy']:.3f}  OOD flagged {clean['ood_flagged']:.3f}")
    for attack, points in result["attacks"].items():
        for e in eps:
            p = points[eps_key(e)]
            print(
                f"  {attack:4} eps {e:<5g}   acc {p['accuracy']:.3f}  "
                f"OOD flagged {p['ood_flagged']:.3f} (out of range {p['ood_out_of_range']:.3f})"
            )


def summary(results: list[dict[str, Any]], eps: tuple[float, ...]) -> None:
    """Mean over seeds of each arm's accuracy (and OOD flagged share) per attack and eps."""
    print("\n## mean over seeds: accuracy (OOD flagged)")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["arm"]), []).append(r)
    for (dataset, arm), rs in groups.items():
        clean = sum(r["clean"]["accuracy"] for r in rs) / len(rs)
        cells = [f"clean {clean:.3f}"]
        for attack in rs[0]["attacks"]:
            for e in eps:
                points = [r["attacks"][attack][eps_key(e)] for r in rs]
                acc = sum(p["accuracy"] for p in points) / len(points)
                flagged = sum(p["ood_flagged"] for p in points) / len(points)
                cells.append(f"{attack}@{e:g} {acc:.3f} ({flagged:.2f})")
        print(f"  {dataset:13} {arm:13} n={len(rs)}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
