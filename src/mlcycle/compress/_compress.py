"""``mlcycle compress``: make smaller variants of a version, measure them all, keep what pays.

:func:`compress` builds the variants asked for (or, with ``auto``, every one
that applies), measures each against the original in one run
(:mod:`~mlcycle.compress._measure`), and judges them: a variant is kept only
when it is faster than the original at the deployment batch size *and* its
headline metric drops by no more than ``max_drop`` points. Of the kept ones
``auto`` chooses the smallest (then the fastest). Every rejection says why
(``dynamic-int8: 7.1x slower at batch 64 (ConvInteger)``). Kept variants
become new versions of the same model with lineage ``derived_from``; the
comparison is a compression run (experiment ``compress``) with an offline
HTML report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from mlcycle._system import cores
from mlcycle.compress._measure import Variant, measure, slow_ops
from mlcycle.compress._quantize import CALIBRATIONS, dynamic_int8, fp16, static_int8
from mlcycle.errors import MlcycleError, NotFoundError, SpecError
from mlcycle.evaluate import default_metric, metric
from mlcycle.monitor import reference_answers
from mlcycle.registry import Predictor
from mlcycle.registry._add import VersionDraft, add_version
from mlcycle.registry._card import dataset_facts

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = ["METHODS", "CompressionResult", "compress"]

METHODS = ("dynamic-int8", "static-int8", "fp16", "prune", "prune+static-int8")
# What --auto tries: pruning (a fine-tuning each) only where the version has a PyTorch
# model of mlcycle's zoo to cut.
_PRUNABLE = ("mlp", "cnn")
EXPERIMENT = "compress"
# Faster means at least this much faster: a variant within timing noise of the original
# gains nothing worth a new version.
MIN_SPEEDUP = 1.05
CALIBRATION_BATCH = 128


@dataclass
class CompressionResult:
    """The original and every variant, measured; the chosen one; the report."""

    model: str
    batch: int
    metric: str
    max_drop: float
    variants: list[Variant]
    chosen: str | None = None
    registered: list[str] = field(default_factory=list)
    run_id: str | None = None
    report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "batch": self.batch,
            "metric": self.metric,
            "max_drop_points": self.max_drop,
            "chosen": self.chosen,
            "registered": self.registered,
            "run_id": self.run_id,
            "report": self.report,
            "variants": [v.to_dict() for v in self.variants],
        }


def _calibration_batches(predictor: Predictor, table: pa.Table, rows: int) -> list[dict[str, Any]]:
    """Validated feeds of up to ``rows`` rows, in batches of 128, the last one short."""
    table = table.slice(0, min(rows, table.num_rows))
    return [
        dict(predictor.feeds(table.slice(start, CALIBRATION_BATCH)))
        for start in range(0, table.num_rows, CALIBRATION_BATCH)
    ]


def _check_methods(methods: Sequence[str]) -> list[str]:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SpecError(f"--method {unknown[0]!r} is not one of {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        raise SpecError(f"--method: {list(methods)} names a method twice")
    return list(methods)


def compress(
    project: Project,
    ref: str,
    *,
    methods: Sequence[str] | None = None,
    auto: bool = False,
    max_drop: float = 0.5,
    batch: int = 64,
    calibration: str = "minmax",
    per_channel: bool | None = None,
    calibration_rows: int = 1024,
    calibration_data: pa.Table | str | os.PathLike[str] | None = None,
    threads: int | None = None,
    register: bool = True,
    alias: str | None = None,
    prune_ratio: float = 0.5,
    on_step: Callable[[str], None] | None = None,
) -> CompressionResult:
    """Compress version ``ref`` (``NAME@VERSION`` or ``NAME@ALIAS``) and measure every variant.

    Args:
        methods: which variants to make (:data:`METHODS`); default with ``auto``: all.
        auto: choose the smallest kept variant and register it alone.
        max_drop: the most the headline metric (accuracy for classification)
            may drop, in points (0.5: half a percentage point; for regression,
            percent of the original's error).
        batch: the deployment batch size the variants must be faster at.
        calibration: ``minmax``, ``entropy`` or ``percentile`` (static int8).
        per_channel: one scale per output channel of each weight (default: for
            graphs with convolutions, whose channels differ widely; one per
            tensor otherwise, which is smaller and as accurate for dense layers).
        calibration_rows: training rows to calibrate on; ``calibration_data``
            replaces them with a table of the model's input columns.
        threads: ONNX Runtime threads for every timing (default: as serving).
        register: register kept variants as new versions (``auto``: the chosen one).
        alias: put this alias on the chosen (or only) registered variant.
        prune_ratio: the share of hidden neurons and convolution channels that
            ``prune`` cuts before fine-tuning with the run's own spec.

    Raises:
        SpecError: an unknown method or calibration, a limit out of range, a gbm model.
        NotFoundError: no such model version.
        DataError: calibration data lacks a column the model needs.
    """
    if not 0 <= max_drop <= 100:
        raise SpecError(f"--max-drop: {max_drop} is not between 0 and 100 (points)")
    if batch < 1:
        raise SpecError(f"--batch: {batch} is not >= 1")
    if calibration not in CALIBRATIONS:
        raise SpecError(f"--calibration: {calibration!r} is not one of {', '.join(CALIBRATIONS)}")
    if not 0 < prune_ratio < 1:
        raise SpecError(f"--prune-ratio: {prune_ratio} is not between 0 and 1 (exclusive)")
    chosen_methods = _check_methods(methods or (list(METHODS) if auto else []))
    if not chosen_methods:
        raise SpecError("mlcycle compress: name a --method (or --auto to try them all)")
    say = on_step or (lambda _: None)
    parent = project.store.registry.get(ref)
    if "lightgbm.txt" in parent.files:
        raise SpecError(
            f"mlcycle compress: {parent.ref} is a gbm model (LightGBM trees); pruning, int8 "
            "quantization and distillation compress the weights of a network. Make the trees "
            "smaller by training with fewer (train.model.options.n_estimators) or smaller "
            "(num_leaves) trees"
        )
    files = {p: project.artifacts.read_bytes(s) for p, s in parent.files.items()}
    signature = json.loads(files["signature.json"])
    dataset_ref = parent.lineage.get("dataset")
    if not dataset_ref:
        raise NotFoundError(f"{parent.ref} records no dataset version: nothing to measure on")
    version = project.datasets.get(dataset_ref)
    splits = project.datasets.load_split(version)
    task = signature["task"]
    family = "regression" if task == "regression" else "classification"
    headline = default_metric(task)
    threads = threads or min(4, cores())

    original = Variant("original", {}, onnx=files["model.onnx"], verdict="original")
    variants = [original]
    base = Predictor(files["model.onnx"], signature, name=parent.ref)
    if isinstance(calibration_data, str | os.PathLike):
        from mlcycle.monitor._window import read_table_file

        calibration_data = read_table_file(Path(calibration_data), "calibration data")
    calibration_table: pa.Table = (
        calibration_data if calibration_data is not None else splits["train"]
    )
    batches_for_calibration: list[dict[str, Any]] = []
    if "static-int8" in chosen_methods:  # a column missing from given rows is the user's error
        batches_for_calibration = _calibration_batches(base, calibration_table, calibration_rows)
    if per_channel is None:
        per_channel = bool(
            {"Conv"} & {n.op_type for n in onnx.load_from_string(files["model.onnx"]).graph.node}
        )
    pruned: tuple[Any, bytes] | None = None
    for method in chosen_methods:
        say(f"making {method}")
        params: dict[str, Any] = {}
        run_of: str | None = None
        try:
            if method.startswith("prune"):
                if pruned is None:
                    why = _not_prunable(project, parent)
                    if why is not None:
                        if not auto:
                            raise SpecError(f"--method {method}: {why}")
                        variants.append(
                            Variant(method, {}, error=f"not applicable: {why}", verdict="rejected")
                        )
                        continue
                    pruned = _prune(project, parent, prune_ratio)
                outcome, pruned_graph = pruned
                params = {
                    "ratio": prune_ratio,
                    "run": outcome.run_id,
                    "parameters_before": outcome.parameters_before,
                    "parameters_after": outcome.parameters_after,
                    "widths_after": {k: list(v) for k, v in outcome.widths_after.items()},
                }
                run_of = outcome.run_id
                if method == "prune":
                    graph = pruned_graph
                else:
                    params |= {"calibration": calibration, "per_channel": per_channel}
                    graph = static_int8(
                        pruned_graph,
                        batches_for_calibration
                        or _calibration_batches(base, calibration_table, calibration_rows),
                        calibration=calibration,
                        per_channel=per_channel,
                    )
            elif method == "dynamic-int8":
                graph = dynamic_int8(files["model.onnx"])
            elif method == "static-int8":
                params = {
                    "calibration": calibration,
                    "per_channel": per_channel,
                    "calibration_rows": min(calibration_rows, calibration_table.num_rows),
                    "calibration_source": "given" if calibration_data is not None else "train",
                }
                graph = static_int8(
                    files["model.onnx"],
                    batches_for_calibration,
                    calibration=calibration,
                    per_channel=per_channel,
                )
            else:
                graph = fp16(files["model.onnx"])
        except SpecError:
            raise
        except MlcycleError as exc:  # the tools refused this graph: say so, try the others
            variants.append(Variant(method, params, error=str(exc), verdict="rejected"))
            continue
        variant = Variant(method, params, onnx=graph, run_id=run_of)
        if pruned is not None and method.startswith("prune"):
            variant.parameters = pruned[0].parameters_after
        variants.append(variant)
    say(f"measuring {len(variants)} graphs at batch 1 and {batch}")
    batches = (1, batch) if batch != 1 else (1,)
    measure(variants, signature, splits["test"], batches=batches, threads=threads)
    _judge(variants, headline, family, max_drop, batch)
    kept = [v for v in variants if v.verdict == "kept"]
    chosen = min(kept, key=lambda v: (v.size_bytes, v.latency_ms[batch])) if kept else None
    if chosen is not None:
        chosen.verdict = "chosen"
        chosen.reason = (
            f"smallest kept variant: {chosen.size_bytes / original.size_bytes:.0%} of the size, "
            f"{original.latency_ms[batch] / chosen.latency_ms[batch]:.2f}x faster at batch "
            f"{batch}"
        )
    result = CompressionResult(
        model=parent.ref,
        batch=batch,
        metric=headline,
        max_drop=max_drop,
        variants=variants,
        chosen=chosen.method if chosen else None,
    )
    run = project.runs.start(
        f"compress {parent.ref}",
        params={
            "model": parent.ref,
            "methods": chosen_methods,
            "auto": auto,
            "max_drop_points": max_drop,
            "batch": batch,
            "threads": threads,
        },
        dataset=version.ref,
        tags={"kind": "compress", "model": parent.name},
        experiment=EXPERIMENT,
    )
    result.run_id = run.id
    with run:
        to_register = ([chosen] if chosen else []) if auto else kept + ([chosen] if chosen else [])
        if register:
            for variant in to_register:
                say(f"registering {variant.method}")
                if variant.method == "prune":  # a trained network: registered as any run is
                    from mlcycle.workflow import register as register_run

                    assert variant.run_id is not None
                    record = register_run(
                        project,
                        variant.run_id,
                        parent.name,
                        alias=alias if variant is (chosen or to_register[0]) else None,
                        description=f"{variant.method} of {parent.ref}",
                        reason=f"compressed: {variant.method} of {parent.ref}",
                        derived_from={
                            "model": parent.name,
                            "version": parent.version,
                            "method": variant.method,
                            "params": variant.params,
                        },
                    )
                    variant.version = record.ref
                    result.registered.append(record.ref)
                    continue
                record = register_variant(
                    project,
                    parent,
                    variant,
                    splits,
                    signature,
                    files,
                    run_id=run.id,
                    alias=alias if variant is (chosen or to_register[0]) else None,
                )
                variant.version = record.ref
                result.registered.append(record.ref)
        from mlcycle.compress._report import write_report

        path = write_report(project, result)
        run.log_artifact("compress.html", path, "text/html")
        result.report = str(path)
        run.finish("finished", result.to_dict())
    return result


def _not_prunable(project: Project, parent: ModelVersionRecord) -> str | None:
    """Why ``parent`` cannot be pruned, or None when it can."""
    if parent.run_id is None or "weights.safetensors" not in parent.files:
        return f"{parent.ref} has no PyTorch weights to cut (a compressed variant?)"
    kind = project.runs.get(parent.run_id).params.get("train", {}).get("model", {}).get("kind")
    if kind not in _PRUNABLE:
        return f"{parent.ref} is a {kind!r} model; pruning cuts {' and '.join(_PRUNABLE)} models"
    return None


def _prune(project: Project, parent: ModelVersionRecord, ratio: float) -> tuple[Any, bytes]:
    """Prune and fine-tune ``parent``'s run; the outcome and the pruned graph's bytes."""
    from mlcycle.compress._prune import prune_run
    from mlcycle.train import FeatureLayout, export_onnx, load_model

    assert parent.run_id is not None
    outcome = prune_run(project, parent.run_id, ratio=ratio)
    model, config = load_model(project, outcome.run_id)
    graph = export_onnx(
        model,
        FeatureLayout.from_dict(config["layout"]),
        list(config["classes"]) or None,
        str(config["task"]),
    )
    return outcome, graph


def _judge(
    variants: list[Variant], headline: str, family: str, max_drop: float, batch: int
) -> None:
    """Give every variant its verdict and reason, against ``variants[0]``."""
    original = variants[0]
    m = metric(headline, "regression" if family == "regression" else "classification")
    before = original.test.get(headline)
    for v in variants[1:]:
        if v.error is not None:
            v.reason = f"could not be made: {v.error}"
            continue
        after = v.test.get(headline)
        speed = original.latency_ms[batch] / v.latency_ms[batch]
        slow = slow_ops(v.onnx)
        why_slow = f" ({', '.join(slow)})" if slow else ""
        drop = 0.0
        if before is not None and after is not None:
            change = m.improvement(before, after)
            drop = -100.0 * float(m.relative(change, before) if family == "regression" else change)
        size = v.size_bytes / max(original.size_bytes, 1)
        change_words = f"{drop:.2f} points lower" if drop > 0.005 else f"{-drop:.2f} points higher"
        facts = (
            f"{size:.0%} of the size, {headline} {after:.4f} vs {before:.4f} ({change_words}), "
            + (f"{speed:.2f}x faster" if speed >= 1 else f"{1 / speed:.2f}x slower")
            + f" at batch {batch}{why_slow}"
            if after is not None and before is not None
            else f"{size:.0%} of the size"
        )
        if v.method == "fp16":
            v.verdict = "reported"
            v.reason = f"fp16 pays on GPU providers; on this CPU it is only reported: {facts}"
        elif speed < MIN_SPEEDUP:
            v.verdict = "rejected"
            v.reason = (
                f"not faster than the original at batch {batch}: {facts}"
                if speed >= 1
                else f"{1 / speed:.1f}x slower at batch {batch}{why_slow}: {facts}"
            )
        elif drop > max_drop:
            v.verdict = "rejected"
            v.reason = f"{headline} drops {drop:.2f} points > {max_drop}: {facts}"
        elif size >= 1:
            v.verdict = "rejected"
            v.reason = f"not smaller than the original: {facts}"
        else:
            v.verdict = "kept"
            v.reason = facts


def register_variant(
    project: Project,
    parent: ModelVersionRecord,
    variant: Variant,
    splits: dict[str, pa.Table],
    signature: dict[str, Any],
    files: dict[str, bytes],
    *,
    run_id: str,
    alias: str | None = None,
) -> ModelVersionRecord:
    """Record ``variant`` as the next version of ``parent``'s model, derived from it."""
    predictor = Predictor(variant.onnx, signature, name=parent.name)
    original_metrics = parent.metrics
    compression = {
        "method": variant.method,
        "params": variant.params,
        "size_bytes": variant.size_bytes,
        "parent_size_bytes": len(files["model.onnx"]),
        "latency_ms": {str(k): v for k, v in variant.latency_ms.items()},
        "verdict": variant.reason,
    }
    metrics = {
        "test": variant.test,
        "test_ci": variant.test_ci,
        "test_metrics": _jsonable(variant.test_metrics),
        "val": {},
        "threshold": original_metrics.get("threshold"),
        "warnings": list(original_metrics.get("warnings", [])),
        "parity": {"reference": parent.ref, **variant.agreement},
        "compression": compression,
    }
    lineage = {
        **parent.lineage,
        "run": run_id,
        "derived_from": {
            "model": parent.name,
            "version": parent.version,
            "method": variant.method,
            "params": variant.params,
        },
    }
    dataset = project.datasets.get(parent.lineage["dataset"])
    draft = VersionDraft(
        task=parent.task,
        onnx=variant.onnx,
        signature=signature,
        metrics=metrics,
        lineage=lineage,
        dataset=dataset_facts(dataset, parent.lineage.get("split")),
        run_id=run_id,
        files={
            "reference.parquet": reference_answers(
                predictor, splits["validation"], signature["target"]
            ),
            **({"ood.json": files["ood.json"]} if "ood.json" in files else {}),
        },
    )
    return add_version(
        project,
        parent.name,
        draft,
        actor=project.actor,
        alias=alias,
        description=f"{variant.method} of {parent.ref}",
        reason=f"compressed: {variant.method} of {parent.ref}",
    )


def _jsonable(value: Any) -> Any:
    return json.loads(
        json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    )
