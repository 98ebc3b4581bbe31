"""Register a finished training run as a new version of a named model.

Registration exports the network to ONNX with raw-column inputs, checks the
graph against PyTorch on the test rows (the parity check), writes the
signature, metrics, lineage and model card, stores every file as a
content-addressed artifact and records their hashes with the version. A
failed parity check registers nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import ConflictError, DataError, ParityError
from mlcycle.registry._card import build_card
from mlcycle.registry._predictor import Predictor
from mlcycle.registry._signature import make_signature
from mlcycle.store import ModelVersionRecord, check_alias, check_name

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.project import Project

__all__ = ["PARITY_ATOL", "check_parity", "register"]

PARITY_ATOL = 1e-4
CONTEXT_ROLES = ("sensitive", "id", "timestamp")  # columns served and logged, never fed
FILES_MEDIA = {
    "model.onnx": "application/onnx",
    "weights.safetensors": "application/vnd.safetensors",
    "model.json": "application/json",
    "signature.json": "application/json",
    "metrics.json": "application/json",
    "lineage.json": "application/json",
    "card.md": "text/markdown",
    "card.html": "text/html",
    "reference.parquet": "application/vnd.apache.parquet",
    "ood.json": "application/json",
}


def check_parity(
    reference: np.ndarray[Any, Any],
    predictor: Predictor,
    table: pa.Table,
    *,
    atol: float = PARITY_ATOL,
) -> dict[str, Any]:
    """Compare the ONNX graph's outputs with PyTorch's (``reference``) on ``table``'s rows.

    Classification must agree within ``atol`` on every probability and give
    identical labels; regression within ``atol`` relative to the value's size.

    Raises:
        ParityError: saying by how much and where they differ.
    """
    names = predictor.input_names
    features = table.select([n for n in names if n in table.column_names])
    result = predictor.predict(features)
    if predictor.task == "regression":
        assert result.values is not None
        got = result.values.astype(np.float64)
        want = reference.astype(np.float64)
        scale = np.maximum(1.0, np.abs(want))
        diff = np.abs(got - want) / scale
        worst = int(np.argmax(diff)) if len(diff) else 0
        if len(diff) and diff[worst] > atol:
            raise ParityError(
                f"parity check failed: ONNX Runtime gives {got[worst]:.6g} and PyTorch "
                f"{want[worst]:.6g} at test row {worst} (difference relative to "
                f"max(1, |value|) {diff[worst]:.3g} > tolerance {atol})"
            )
        return {
            "rows": len(diff),
            "max_abs_diff": float(np.abs(got - want).max(initial=0.0)),
            "max_rel_diff": float(diff.max(initial=0.0)),
            "tolerance": atol,
            "labels_identical": None,
        }
    assert result.probabilities is not None and result.labels is not None
    diff = np.abs(result.probabilities.astype(np.float64) - reference.astype(np.float64))
    classes = predictor.classes or []
    expected_labels = np.asarray(classes, dtype=object)[reference.argmax(axis=1)]
    differing = np.flatnonzero(result.labels != expected_labels)
    flat = int(np.argmax(diff)) if diff.size else 0
    worst_row, worst_col = divmod(flat, max(diff.shape[1], 1)) if diff.ndim == 2 else (0, 0)
    largest = float(diff.max(initial=0.0))
    if largest > atol or len(differing):
        where = f"test row {worst_row}, class {classes[worst_col]!r}"
        labels = (
            f"; {len(differing)} labels differ (rows {', '.join(map(str, differing[:5]))})"
            if len(differing)
            else ""
        )
        raise ParityError(
            f"parity check failed: ONNX Runtime and PyTorch probabilities differ by up to "
            f"{largest:.3g} (> {atol}) at {where}{labels}"
        )
    return {
        "rows": int(diff.shape[0]),
        "max_abs_diff": largest,
        "tolerance": atol,
        "labels_identical": True,
    }


def _spec_hash(params: dict[str, Any]) -> str:
    blob = json.dumps(
        {k: params.get(k) for k in ("train", "evaluate")}, sort_keys=True, separators=(",", ":")
    ).encode()
    return hashlib.sha256(blob).hexdigest()


def register(
    project: Project,
    run_id: str,
    name: str,
    *,
    alias: str | None = None,
    description: str | None = None,
    reason: str | None = None,
) -> ModelVersionRecord:
    """Make a finished training run the next version of model ``name``.

    The name and the alias are checked before anything is exported, and the
    version is written together with its alias (one transaction).

    Raises:
        InvalidNameError: ``name`` or ``alias`` breaks the naming rule; nothing is exported.
        ConflictError: the run has not finished training.
        ParityError: the exported graph disagrees with PyTorch; nothing is registered.
    """
    from mlcycle.registry._export import export_onnx
    from mlcycle.train import encode, load_model, predict
    from mlcycle.train._features import FeatureLayout

    check_name(name, "model name")
    if alias is not None:
        check_alias(alias)
    run = project.runs.get(run_id)
    if run.status != "finished":
        raise ConflictError(f"run {run.id} is {run.status}: only a finished run can be registered")
    if run.dataset_version_id is None:
        raise ConflictError(f"run {run.id} records no dataset version: it cannot be registered")
    model, config = load_model(project, run.id)
    layout = FeatureLayout.from_dict(config["layout"])
    classes: list[str] | None = list(config["classes"]) or None
    task = str(config["task"])
    dataset = project.store.get_dataset_version_by_id(run.dataset_version_id)
    test = project.datasets.load_split(dataset)["test"]
    if test.num_rows == 0:
        raise DataError(f"dataset {dataset.ref} has no test rows: the parity check needs some")

    onnx_bytes = export_onnx(model, layout, classes, task)
    schema = dataset.schema.get("columns", [])
    signature = make_signature(
        layout,
        task=task,
        target=config["target"],
        classes=classes,
        profile=dataset.profile,
        context=[
            {"name": c["name"], "role": c["role"]} for c in schema if c.get("role") in CONTEXT_ROLES
        ],
    )
    reference = predict(model, encode(test, layout), model.target_mean.device).numpy()
    predictor = Predictor(onnx_bytes, signature, name=name)
    parity = check_parity(reference, predictor, test)
    splits = project.datasets.load_split(dataset)
    reference_outputs = _reference_outputs(predictor, splits["validation"], config["target"])
    ood = _ood_detector(project, splits, signature)

    summary = run.summary
    metrics = {
        "test": summary.get("test", {}),
        "test_ci": summary.get("test_ci", {}),
        "test_metrics": summary.get("test_metrics", {}),
        "val": summary.get("val", {}),
        "threshold": summary.get("threshold"),
        "warnings": summary.get("warnings", []),
        "parity": parity,
    }
    environment = run.params.get("environment", {})
    lineage = {
        "run": run.id,
        "dataset": dataset.ref,
        "dataset_fingerprint": dataset.fingerprint,
        "split": run.params.get("split"),
        "spec_sha256": _spec_hash(run.params),
        "params": {k: run.params.get(k) for k in ("train", "evaluate")},
        "git": environment.get("git"),
        "packages": environment.get("packages"),
    }
    return _store_version(
        project,
        name,
        run_id=run.id,
        task=task,
        onnx_bytes=onnx_bytes,
        weights_sha=run.artifacts["model/weights.safetensors"],
        model_json_sha=run.artifacts["model/model.json"],
        signature=signature,
        metrics=metrics,
        lineage=lineage,
        dataset_facts={
            "ref": dataset.ref,
            "source": dataset.source,
            "rows": dataset.n_rows,
            "split": run.params.get("split"),
            "fingerprint": dataset.fingerprint,
            "warnings": dataset.profile.get("warnings", []),
        },
        description=description,
        alias=alias,
        reason=reason,
        extra_files={"reference.parquet": reference_outputs, "ood.json": ood},
    )


def _reference_outputs(predictor: Predictor, validation: pa.Table, target: str) -> bytes:
    """The model's answers on the validation split, with the truth: monitoring's reference.

    Row ``i`` is row ``i`` of the dataset version's validation split, so the
    monitor can join other columns (sensitive attributes) by position.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if validation.num_rows == 0:
        raise DataError("the dataset has no validation rows: monitoring needs a reference")
    result = predictor.predict(validation.select(predictor.input_names))
    columns: dict[str, pa.Array] = {}
    if result.values is not None:
        columns["value"] = pa.array(result.values.astype(np.float64))
        columns["actual"] = validation.column(target).cast(pa.float64()).combine_chunks()
    else:
        assert result.labels is not None and result.probabilities is not None
        p = result.probabilities.astype(np.float32)
        columns["label"] = pa.array(result.labels.astype(str).tolist(), pa.string())
        columns["probabilities"] = pa.FixedSizeListArray.from_arrays(
            pa.array(p.ravel()), p.shape[1]
        )
        columns["actual"] = validation.column(target).cast(pa.string()).combine_chunks()
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return bytes(sink.getvalue().to_pybytes())


def _ood_detector(
    project: Project, splits: dict[str, pa.Table], signature: dict[str, Any]
) -> bytes:
    """The out-of-distribution detector: fitted on the training rows, its threshold on validation.

    Servers flag requests with it and monitoring tracks the flagged share.
    """
    from mlcycle.monitor import OODDetector

    detector = OODDetector.fit(
        splits["train"],
        splits["validation"],
        signature,
        quantile=project.spec.monitor.ood.quantile,
    )
    return json.dumps(detector.to_dict(), sort_keys=True).encode()


def _store_version(
    project: Project,
    name: str,
    *,
    run_id: str,
    task: str,
    onnx_bytes: bytes,
    weights_sha: str,
    model_json_sha: str,
    signature: dict[str, Any],
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    dataset_facts: dict[str, Any],
    description: str | None,
    alias: str | None,
    reason: str | None,
    extra_files: dict[str, bytes] | None = None,
) -> ModelVersionRecord:
    registry = project.store.registry
    card = build_card(
        name=name,
        run_id=run_id,
        task=task,
        description=description,
        dataset=dataset_facts,
        metrics=metrics,
        signature=signature,
        lineage=lineage,
    )

    def put(path: str, data: bytes) -> str:
        return project.artifacts.put_bytes(data, FILES_MEDIA[path]).sha256

    def as_json(value: Any) -> bytes:
        return json.dumps(value, indent=2, sort_keys=True, default=str).encode()

    files = {
        "model.onnx": put("model.onnx", onnx_bytes),
        "weights.safetensors": weights_sha,
        "model.json": model_json_sha,
        "signature.json": put("signature.json", as_json(signature)),
        "metrics.json": put("metrics.json", as_json(metrics)),
        "lineage.json": put("lineage.json", as_json(lineage)),
        "card.md": put("card.md", card.markdown().encode()),
        "card.html": put("card.html", card.html().encode()),
    }
    for path, data in (extra_files or {}).items():
        files[path] = put(path, data)
    return registry.add_version(
        name,
        run_id=run_id,
        task=task,
        metrics=metrics,
        lineage=lineage,
        signature=signature,
        files=files,
        actor=project.actor,
        description=description,
        alias=alias,
        reason=reason or "registered",
    )
