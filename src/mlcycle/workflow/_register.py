"""Register a finished training run as a new version of a named model.

Registration exports the network to ONNX with raw-column inputs (a gbm run
brings the graph it exported), checks the graph against PyTorch (LightGBM)
on the test rows (the parity check), records the
answers on the validation rows (monitoring's reference) and fits the
out-of-distribution detector, then hands the registry the bytes and
metadata: it writes the model card, stores every file as a
content-addressed artifact and records their hashes with the version. A
failed parity check registers nothing. The dataset version's split is read
once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlcycle.errors import ConflictError, DataError
from mlcycle.monitor import fit_ood_detector, reference_answers
from mlcycle.registry import Predictor, make_signature
from mlcycle.registry._add import VersionDraft, add_version
from mlcycle.registry._card import dataset_facts
from mlcycle.registry._signature import InputLayout
from mlcycle.store import check_alias, check_name
from mlcycle.train import (
    GBM_TEXT,
    MODEL_ONNX,
    FeatureLayout,
    GbmModel,
    export_gbm_onnx,
    export_onnx,
    load_trained,
    verify_export,
    verify_gbm_export,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.project import Project
    from mlcycle.store import DatasetVersionRecord, ModelVersionRecord, RunRecord

__all__ = ["dataset_signature", "register", "store_version"]

CONTEXT_ROLES = ("sensitive", "id", "timestamp")  # columns served and logged, never fed


def register(
    project: Project,
    run_id: str,
    name: str,
    *,
    alias: str | None = None,
    description: str | None = None,
    reason: str | None = None,
    derived_from: Mapping[str, Any] | None = None,
) -> ModelVersionRecord:
    """Make a finished training run the next version of model ``name``.

    The name and the alias are checked before anything is exported, and the
    version is written together with its alias (one transaction).
    ``derived_from`` (``model``, ``version``, ``method``, ``params``) records
    the version this one was made from (a pruned or distilled model).

    Raises:
        InvalidNameError: ``name`` or ``alias`` breaks the naming rule; nothing is exported.
        ConflictError: the run has not finished training.
        ParityError: the exported graph disagrees with PyTorch; nothing is registered.
    """
    check_name(name, "model name")
    if alias is not None:
        check_alias(alias)
    run = project.runs.get(run_id)
    if run.status != "finished":
        raise ConflictError(f"run {run.id} is {run.status}: only a finished run can be registered")
    if run.dataset_version_id is None:
        raise ConflictError(f"run {run.id} records no dataset version: it cannot be registered")
    dataset = project.store.get_dataset_version_by_id(run.dataset_version_id)
    splits = project.datasets.load_split(dataset)
    if splits["test"].num_rows == 0:
        raise DataError(f"dataset {dataset.ref} has no test rows: the parity check needs some")

    # train: the model as trained, exported, and checked against itself
    model, config = load_trained(project, run.id)
    layout = FeatureLayout.from_dict(config["layout"])
    classes: list[str] | None = list(config["classes"]) or None
    task = str(config["task"])
    if isinstance(model, GbmModel):  # boosted trees: the graph was exported with the run
        exported = run.artifacts.get(MODEL_ONNX)
        onnx_bytes = project.artifacts.read_bytes(exported) if exported else export_gbm_onnx(model)
        stored = {"lightgbm.txt": run.artifacts[GBM_TEXT]}
    else:
        onnx_bytes = export_onnx(model, layout, classes, task)
        stored = {"weights.safetensors": run.artifacts["model/weights.safetensors"]}
    signature = dataset_signature(
        dataset, layout, task=task, target=config["target"], classes=classes
    )
    predictor = Predictor(onnx_bytes, signature, name=name)
    if isinstance(model, GbmModel):
        parity = verify_gbm_export(model, predictor, splits["test"])
    else:
        parity = verify_export(model, layout, predictor, splits["test"])
    return store_version(
        project,
        name,
        predictor=predictor,
        onnx=onnx_bytes,
        splits=splits,
        metrics=_metrics(run, parity),
        lineage={
            **_lineage(run, dataset),
            **({"derived_from": dict(derived_from)} if derived_from else {}),
        },
        dataset=_dataset_facts(run, dataset),
        run_id=run.id,
        stored={**stored, "model.json": run.artifacts["model/model.json"]},
        alias=alias,
        description=description,
        reason=reason,
    )


def dataset_signature(
    dataset: DatasetVersionRecord,
    layout: InputLayout,
    *,
    task: str,
    target: str,
    classes: list[str] | None,
) -> dict[str, Any]:
    """The signature of a model taking ``layout``'s columns of ``dataset``, its context columns beside."""
    schema = dataset.schema.get("columns", [])
    return make_signature(
        layout,
        task=task,
        target=target,
        classes=classes,
        profile=dataset.profile,
        context=[
            {"name": c["name"], "role": c["role"]} for c in schema if c.get("role") in CONTEXT_ROLES
        ],
    )


def store_version(
    project: Project,
    name: str,
    *,
    predictor: Predictor,
    onnx: bytes,
    splits: dict[str, pa.Table],
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    dataset: dict[str, Any],
    run_id: str | None,
    stored: Mapping[str, str] | None = None,
    alias: str | None = None,
    description: str | None = None,
    reason: str | None = None,
) -> ModelVersionRecord:
    """The tail every registration shares, once the graph has passed its parity check.

    Monitoring's reference answers (validation rows) and the OOD detector
    (training rows), then the registry's card, stored files and version,
    written together with ``alias``.
    """
    signature = predictor.signature
    # monitor: what the version's answers are compared with once it serves
    files = {
        "reference.parquet": reference_answers(
            predictor, splits["validation"], signature["target"]
        ),
        "ood.json": _ood_document(project, splits, signature),
    }
    # registry: the card, the stored files, the version
    draft = VersionDraft(
        task=signature["task"],
        onnx=onnx,
        signature=signature,
        metrics=metrics,
        lineage=lineage,
        dataset=dataset,
        run_id=run_id,
        files=files,
        stored=dict(stored or {}),
    )
    return add_version(
        project,
        name,
        draft,
        actor=project.actor,
        alias=alias,
        description=description,
        reason=reason,
    )


def _ood_document(
    project: Project, splits: dict[str, pa.Table], signature: dict[str, Any]
) -> bytes:
    """The out-of-distribution detector: fitted on the training rows, its threshold on validation.

    Servers flag requests with it and monitoring tracks the flagged share.
    """
    detector = fit_ood_detector(
        splits["train"],
        splits["validation"],
        signature,
        quantile=project.spec.monitor.ood.quantile,
    )
    return json.dumps(detector.to_dict(), sort_keys=True).encode()


def _metrics(run: RunRecord, parity: dict[str, Any]) -> dict[str, Any]:
    summary = run.summary
    return {
        "test": summary.get("test", {}),
        "test_ci": summary.get("test_ci", {}),
        "test_metrics": summary.get("test_metrics", {}),
        "val": summary.get("val", {}),
        "threshold": summary.get("threshold"),
        "warnings": summary.get("warnings", []),
        "parity": parity,
    }


def _lineage(run: RunRecord, dataset: DatasetVersionRecord) -> dict[str, Any]:
    environment = run.params.get("environment", {})
    return {
        "run": run.id,
        "dataset": dataset.ref,
        "dataset_fingerprint": dataset.fingerprint,
        "split": run.params.get("split"),
        "spec_sha256": _spec_hash(run.params),
        "params": {k: run.params.get(k) for k in ("train", "evaluate")},
        "git": environment.get("git"),
        "packages": environment.get("packages"),
    }


def _dataset_facts(run: RunRecord, dataset: DatasetVersionRecord) -> dict[str, Any]:
    return dataset_facts(dataset, run.params.get("split"))


def _spec_hash(params: dict[str, Any]) -> str:
    blob = json.dumps(
        {k: params.get(k) for k in ("train", "evaluate")}, sort_keys=True, separators=(",", ":")
    ).encode()
    return hashlib.sha256(blob).hexdigest()
