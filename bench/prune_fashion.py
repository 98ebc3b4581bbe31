"""Fashion-MNIST CNN: structured pruning of 50% of the channels + fine-tuning (issue 17).

Trains the default CNN spec (channels 32-64, one hidden layer of 128) for
``--epochs`` epochs, prunes it with :func:`mlcycle.compress.prune_run`
(``--ratio`` of every conv layer's channels and of the hidden layer's
neurons), fine-tunes with the run's own spec, and compares the two runs:
parameters, ONNX size, test accuracy (from the runs' summaries) and ONNX
Runtime latency at ``--batch`` rows on one thread (median of interleaved
repeated calls, so that a busy machine slows both alike).

Usage::

    .venv/bin/python bench/prune_fashion.py [--images 3000] [--epochs 8] [--ratio 0.5 | --max-drop 0.01]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

import mlcycle
from mlcycle.compress import prune_run
from mlcycle.registry import Predictor, make_signature
from mlcycle.train import FeatureLayout, export_onnx, load_model, train


def graph(project: mlcycle.Project, run_id: str) -> tuple[bytes, Predictor]:
    net, config = load_model(project, run_id)
    layout = FeatureLayout.from_dict(config["layout"])
    onnx_bytes = export_onnx(net, layout, config["classes"], config["task"])
    signature = make_signature(
        layout, task=config["task"], target=config["target"], classes=config["classes"], profile={}
    )
    return onnx_bytes, Predictor(onnx_bytes, signature, name=run_id, threads=1)


def latencies(predictors: list[Predictor], rows: Any, batch: int, rounds: int) -> list[float]:
    feeds = [p.feeds(rows.take([i % rows.num_rows for i in range(batch)])) for p in predictors]
    for p, f in zip(predictors, feeds, strict=True):
        for _ in range(10):
            p.run(f)
    times: list[list[float]] = [[] for _ in predictors]
    for _ in range(rounds):
        for k, (p, f) in enumerate(zip(predictors, feeds, strict=True)):
            start = time.perf_counter()
            p.run(f)
            times[k].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--max-drop", type=float, default=None)
    parser.add_argument("--fine-tune-epochs", type=int, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with mlcycle.Project.init(tempfile.mkdtemp(), name="prune") as project:
        ref = project.datasets.add(f"fashion-mnist:{args.images}").version.ref
        started = time.perf_counter()
        original = train(project, data=ref, model="cnn", overrides={"max_epochs": args.epochs})
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        how = {"max_drop": args.max_drop} if args.max_drop is not None else {"ratio": args.ratio}
        pruned = prune_run(
            project,
            original.run_id,
            fine_tune_epochs=args.fine_tune_epochs,
            **how,  # type: ignore[arg-type]
        )
        prune_s = time.perf_counter() - started
        (big, big_p), (small, small_p) = (
            graph(project, original.run_id),
            graph(project, pruned.run_id),
        )
        test = project.datasets.load_split(project.datasets.get(ref))["test"]
        at_batch = latencies([big_p, small_p], test, args.batch, args.rounds)
        at_one = latencies([big_p, small_p], test, 1, args.rounds)
        acc_before, acc_after = pruned.accuracy_before or 0.0, pruned.accuracy_after or 0.0
        print(
            json.dumps(
                {
                    "dataset": ref,
                    "epochs": args.epochs,
                    "how": how,
                    "widths": [pruned.widths_before, pruned.widths_after],
                    "steps": [
                        (s.hidden, s.channels, round(s.val_score, 4), s.accepted)
                        for s in pruned.steps
                    ],
                    "parameters": [pruned.parameters_before, pruned.parameters_after],
                    "parameters_ratio": pruned.parameters_before / pruned.parameters_after,
                    "onnx_bytes": [len(big), len(small)],
                    "onnx_ratio": len(big) / len(small),
                    "test_accuracy": [acc_before, acc_after],
                    "drop_points": 100 * (acc_before - acc_after),
                    "val_accuracy": [pruned.val_before, pruned.val_after],
                    f"latency_ms_batch{args.batch}": at_batch,
                    f"speedup_batch{args.batch}": at_batch[0] / at_batch[1],
                    "latency_ms_batch1": at_one,
                    "speedup_batch1": at_one[0] / at_one[1],
                    "train_s": train_s,
                    "prune_and_fine_tune_s": prune_s,
                },
                default=str,
            )
        )


if __name__ == "__main__":
    main()
