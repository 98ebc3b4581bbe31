"""Training-loop overhead: ``mlcycle.train.fit`` against a bare PyTorch loop (issue 3).

The same network (mlcycle's ``build_model``: in-model pixel scaling, then an MLP
64 -> 128 -> 64 -> 10 with dropout 0.1), the same data (sklearn digits through
``mlcycle.data.prepare``: 1258 train rows, 270 validation rows), the same batch
size, epochs, optimiser (AdamW, the spec's lr and weight decay) and seed are
trained three ways:

* ``bare``: the minimum hand-written loop (randperm per epoch, index batches
  from pre-made tensors, forward, cross-entropy, zero_grad, backward, step, and
  one validation forward pass per epoch);
* ``fit``: ``mlcycle.train.fit`` without ``on_epoch`` (the loop alone);
* ``fit+ckpt``: ``fit`` with an ``on_epoch`` that serialises the checkpoint with
  ``report.checkpoint.to_bytes()`` on the training thread (the naive way);
* ``fit+record``: ``fit`` recorded as ``mlcycle train`` records it: checkpoints
  and every epoch's metrics written to a real project store (SQLite + artifact
  folder) by ``EpochRecorder`` off the training thread, at most one checkpoint
  per ``train.checkpoint_interval_s`` (default 1 s), all writes awaited inside
  the timed region.

Early stopping is effectively off (patience > epochs), so every arm runs every
epoch. The arms are interleaved in rotating order, one untimed warm-up round
first; the figures are medians over the repeats, and the ratios are ratios of
medians (the median of per-round ratios is printed too). Every arm builds a
fresh model from the same seed outside the timed region; the timed region is
the whole training call (set-up included) for each arm.

Both loops draw the same batch order and dropout masks from the same seed, so
the bare loop and ``fit`` must end on identical weights; the script checks
that (max |w_fit - w_bare| at the last epoch) and prints both validation
accuracies, so no arm can be faster by doing less work.

Usage::

    .venv/bin/python bench/train_overhead.py [--repeats N] [--epochs E]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from mlcycle.data import prepare
from mlcycle.spec import DatasetSpec, EarlyStoppingSpec, ModelSpec, TrainSpec
from mlcycle.train import (
    EpochReport,
    FeatureLayout,
    MlcycleNet,
    TrainData,
    build_model,
    encode,
    encode_target,
    fit,
    fit_layout,
)

DATASET = "sklearn:digits"
DEVICE = torch.device("cpu")


def load() -> tuple[FeatureLayout, TrainData]:
    """Digits through the public data layer, encoded the way ``mlcycle.train`` does."""
    p = prepare(DATASET, DatasetSpec())
    train = p.table.take(p.split["train"])
    val = p.table.take(p.split["validation"])
    layout = fit_layout(p.schema, train)
    classes = tuple(p.schema.classes or ())
    data = TrainData(
        task=str(p.schema.task),
        n_classes=len(classes),
        train_x=encode(train, layout),
        train_y=encode_target(train, p.schema),
        val_x=encode(val, layout),
        val_y=encode_target(val, p.schema),
        classes=classes,
    )
    return layout, data


def make_spec(epochs: int, seed: int) -> TrainSpec:
    return TrainSpec(
        model=ModelSpec(kind="mlp", hidden=(128, 64)),
        optimizer="adamw",
        batch_size=64,
        max_epochs=epochs,
        early_stopping=EarlyStoppingSpec(patience=epochs + 1),
        seed=seed,
        device="cpu",
    )


def make_model(spec: TrainSpec, layout: FeatureLayout, data: TrainData) -> MlcycleNet:
    torch.manual_seed(spec.seed)
    return build_model(spec.model, layout, data.task, data.n_classes)


# -- the arms ------------------------------------------------------------------------------


def run_bare(spec: TrainSpec, model: MlcycleNet, data: TrainData) -> dict[str, Any]:
    """The minimum loop: what any hand-written PyTorch training script does."""
    assert data.train_x.image is not None and data.val_x.image is not None
    x = torch.from_numpy(data.train_x.image)
    y = torch.from_numpy(data.train_y)
    vx = torch.from_numpy(data.val_x.image)
    vy = torch.from_numpy(data.val_y)
    shuffle = torch.Generator().manual_seed(spec.seed)
    torch.manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    n, bs = len(y), spec.batch_size
    val_loss = val_acc = 0.0
    for _ in range(spec.max_epochs):
        model.train()
        order = torch.randperm(n, generator=shuffle)
        for start in range(0, n, bs):
            index = order[start : start + bs]
            loss = F.cross_entropy(model(image=x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(image=vx)
            val_loss = float(F.cross_entropy(logits, vy))
            val_acc = float((logits.argmax(1) == vy).float().mean())
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"val_accuracy": val_acc, "val_loss": val_loss, "weights": weights}


def run_fit(spec: TrainSpec, model: MlcycleNet, data: TrainData) -> dict[str, Any]:
    """``mlcycle.train.fit``, no callback."""
    result = fit(spec, model, data, device=DEVICE)
    last = result.history[-1]
    return {"val_accuracy": last["val_accuracy"], "val_loss": last["val_loss"], "weights": None}


def run_fit_ckpt(spec: TrainSpec, model: MlcycleNet, data: TrainData) -> dict[str, Any]:
    """``fit`` with an ``on_epoch`` that serialises each epoch's checkpoint."""
    sizes: list[int] = []
    last: dict[str, torch.Tensor] = {}

    def on_epoch(report: EpochReport) -> None:
        tensors, state = report.checkpoint.to_bytes()
        sizes.append(len(tensors) + len(state))
        if report.epoch == spec.max_epochs - 1:  # once: the last epoch's weights, to compare
            last.update({k: v.detach().clone() for k, v in report.checkpoint.weights.items()})

    result = fit(spec, model, data, device=DEVICE, on_epoch=on_epoch)
    row = result.history[-1]
    return {
        "val_accuracy": row["val_accuracy"],
        "val_loss": row["val_loss"],
        "weights": last,
        "checkpoint_bytes": sizes[-1],
    }


_PROJECT: list[Any] = []


def run_fit_record(spec: TrainSpec, model: MlcycleNet, data: TrainData) -> dict[str, Any]:
    """``fit`` recorded as a real run does: checkpoint artifacts and metrics stored every
    epoch into a project (SQLite + artifact folder) by mlcycle's ``EpochRecorder``, whose
    pending writes are awaited inside the timed region."""
    import tempfile

    from mlcycle import Project
    from mlcycle.train._run import EpochRecorder

    if not _PROJECT:
        _PROJECT.append(Project.init(tempfile.mkdtemp(prefix="mlcycle-bench-"), name="bench"))
    project = _PROJECT[0]
    with (
        project.runs.start("bench") as run,
        EpochRecorder(run, min_interval_s=spec.checkpoint_interval_s) as recorder,
    ):
        result = fit(spec, model, data, device=DEVICE, on_epoch=recorder)
    row = result.history[-1]
    return {"val_accuracy": row["val_accuracy"], "val_loss": row["val_loss"], "weights": None}


ARMS: dict[str, Callable[[TrainSpec, MlcycleNet, TrainData], dict[str, Any]]] = {
    "bare": run_bare,
    "fit": run_fit,
    "fit+ckpt": run_fit_ckpt,
    "fit+record": run_fit_record,
}


def timed(
    arm: str, spec: TrainSpec, layout: FeatureLayout, data: TrainData
) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds, CPU seconds, result) of one training call; model built untimed."""
    model = make_model(spec, layout, data)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    out = ARMS[arm](spec, model, data)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a if a[k].numel())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per arm (default 7)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs per run (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    layout, data = load()
    n_train = len(data.train_y)
    spec = make_spec(args.epochs, args.seed)
    arms = list(ARMS)

    # Warm-up: one short untimed run of each arm (imports, allocator, first-call costs).
    warm = make_spec(2, args.seed)
    for arm in arms:
        timed(arm, warm, layout, data)

    wall: dict[str, list[float]] = {a: [] for a in arms}
    cpu: dict[str, list[float]] = {a: [] for a in arms}
    results: dict[str, dict[str, Any]] = {}
    for r in range(args.repeats):
        order = arms[r % len(arms) :] + arms[: r % len(arms)]  # rotate: no arm always first
        for arm in order:
            w, c, out = timed(arm, spec, layout, data)
            wall[arm].append(w)
            cpu[arm].append(c)
            results.setdefault(arm, out)  # the first round's outcome (all rounds are identical)

    samples = n_train * args.epochs
    sps = {a: [samples / w for w in wall[a]] for a in arms}
    med = {a: statistics.median(sps[a]) for a in arms}
    med_cpu = {a: statistics.median(cpu[a]) for a in arms}
    paired = {
        a: statistics.median(wall["bare"][i] / wall[a][i] for i in range(args.repeats))
        for a in arms
    }
    same_weights = max_diff(results["fit+ckpt"]["weights"], results["bare"]["weights"])

    print(
        f"{DATASET}: {n_train} train rows, {len(data.val_y)} validation rows; MLP (128, 64), "
        f"batch {spec.batch_size}, {args.epochs} epochs, {args.repeats} repeats, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, {os.cpu_count()} CPUs"
    )
    print()
    head = (
        f"{'arm':<10} {'samples/s (median)':>19} {'min':>9} {'max':>9} {'vs bare':>8} "
        f"{'paired':>7} {'CPU s/run':>9} {'overhead':>9} {'val acc':>8} {'val loss':>9}"
    )
    print(head)
    print("-" * len(head))
    for a in arms:
        ratio = med[a] / med["bare"]
        print(
            f"{a:<10} {med[a]:>19,.0f} {min(sps[a]):>9,.0f} {max(sps[a]):>9,.0f} {ratio:>8.3f} "
            f"{paired[a]:>7.3f} {med_cpu[a]:>9.3f} {1 / ratio - 1:>8.1%} "
            f"{results[a]['val_accuracy']:>8.4f} {results[a]['val_loss']:>9.5f}"
        )
    print()
    print(
        "vs bare = median samples/s / bare's median samples/s; paired = median over rounds "
        "of t_bare / t_arm; overhead = t_arm / t_bare - 1 (medians)."
    )
    print(f"last-epoch weights, max |fit - bare| = {same_weights:.3g}")
    print(f"last epoch's serialised checkpoint: {results['fit+ckpt']['checkpoint_bytes']:,} bytes")

    record = {
        "bench": "train_overhead",
        "dataset": DATASET,
        "n_train": n_train,
        "n_val": len(data.val_y),
        "epochs": args.epochs,
        "repeats": args.repeats,
        "batch_size": spec.batch_size,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "samples_per_s_median": {a: round(med[a], 1) for a in arms},
        "samples_per_s_all": {a: [round(v, 1) for v in sps[a]] for a in arms},
        "ratio_of_medians_vs_bare": {a: round(med[a] / med["bare"], 4) for a in arms},
        "median_paired_ratio_vs_bare": {a: round(paired[a], 4) for a in arms},
        "cpu_seconds_median": {a: round(med_cpu[a], 4) for a in arms},
        "val_accuracy": {a: round(results[a]["val_accuracy"], 6) for a in arms},
        "val_loss": {a: round(results[a]["val_loss"], 6) for a in arms},
        "max_abs_weight_diff_fit_vs_bare": same_weights,
        "checkpoint_bytes": results["fit+ckpt"]["checkpoint_bytes"],
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
