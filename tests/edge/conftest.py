"""Real models of every input kind, their bundles, and the reference predictions to compare to.

Four small models are trained once per session: iris (numeric), a synthetic
table with a boolean and a categorical column, digits on a CNN (8x8 images)
and diabetes (regression). Each comes with rows to predict that hold missing
values and, for the categorical column, an unseen category.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from mlcycle import Project
from mlcycle.edge import BundleInfo, write_bundle
from mlcycle.registry._inputs import to_feeds
from mlcycle.registry._signature import make_signature
from mlcycle.train import export_onnx, load_model, train
from mlcycle.train._features import FeatureLayout

KINDS = ["iris", "mixed", "digits", "diabetes"]
_SOURCES = {
    "iris": ("sklearn:iris", None),
    "mixed": ("mixed", None),
    "digits": ("sklearn:digits", "cnn"),
    "diabetes": ("sklearn:diabetes", None),
}


@dataclass(frozen=True)
class Model:
    """An exported model, its signature and rows to predict (Python values, None = missing)."""

    kind: str
    onnx_bytes: bytes
    signature: dict[str, Any]
    records: list[dict[str, Any]]


def _mixed_table(rows: int = 160) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    x = rng.normal(size=rows)
    city = rng.choice(["lyon", "nice", "paris"], size=rows)
    member = rng.choice([True, False], size=rows)
    y = np.where((x > 0) ^ (city == "nice") ^ member, "yes", "no")
    return pd.DataFrame({"x": x, "member": member, "city": city, "y": y})


def make_records(signature: dict[str, Any], rows: int, seed: int = 0) -> list[dict[str, Any]]:
    """Rows covering every kind: some numbers and booleans missing, categories missing or unseen."""
    rng = np.random.default_rng(seed)
    records: list[dict[str, Any]] = []
    for i in range(rows):
        record: dict[str, Any] = {}
        for j, spec in enumerate(signature["inputs"]):
            name, kind = spec["name"], spec["kind"]
            if kind == "numeric":
                low, high = spec.get("range") or (-1.0, 1.0)
                value = float(rng.uniform(low, high))
                record[name] = None if (i + j) % 5 == 3 else value
            elif kind == "boolean":
                record[name] = [True, False, None][i % 3]
            elif kind == "categorical":
                choices = [*spec["categories"], "", None, "rome"]
                record[name] = choices[i % len(choices)]
            else:
                shape = spec["shape"][1:]
                record[name] = rng.integers(0, 17, size=shape).astype(float).tolist()
        records.append(record)
    return records


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Model]:
    root = tmp_path_factory.mktemp("edge-models")
    out: dict[str, Model] = {}
    with Project.init(root / "p", name="p") as project:
        project.datasets.add(_mixed_table(), name="mixed", target="y")
        for kind, (data, model_kind) in _SOURCES.items():
            outcome = train(project, data=data, model=model_kind, overrides={"max_epochs": 5})
            model, config = load_model(project, outcome.run_id)
            layout = FeatureLayout.from_dict(config["layout"])
            classes = config["classes"] or None
            onnx_bytes = export_onnx(model, layout, classes, config["task"])
            version = project.datasets.get(config["dataset"])
            signature = make_signature(
                layout,
                task=config["task"],
                target=config["target"],
                classes=classes,
                profile=version.profile,
            )
            rows = 6 if kind == "digits" else 12
            out[kind] = Model(kind, onnx_bytes, signature, make_records(signature, rows))
    return out


@pytest.fixture(scope="session")
def bundles(
    models: dict[str, Model], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, BundleInfo]:
    """One bundle per model, written once: tests that alter a bundle copy it first."""
    root = tmp_path_factory.mktemp("edge-bundles")
    return {
        kind: write_bundle(
            root / kind,
            onnx_bytes=model.onnx_bytes,
            signature=model.signature,
            model_ref=f"{kind}@1",
            card_md=f"# {kind}\n\nTrained for the edge tests.",
        )
        for kind, model in models.items()
    }


def reference(model: Model, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """What mlcycle itself predicts for the rows: ``to_feeds`` and ONNX Runtime in-process."""
    feeds = to_feeds(records if records is not None else model.records, model.signature)
    session = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    if model.signature["task"] == "regression":
        (values,) = session.run(["value"], feeds)
        return [{"value": float(v)} for v in values]
    labels, probabilities = session.run(["label", "probabilities"], feeds)
    classes = model.signature["classes"]
    return [
        {"label": str(label), "probabilities": dict(zip(classes, map(float, p), strict=True))}
        for label, p in zip(labels, probabilities, strict=True)
    ]


def assert_same(printed: str, expected: list[dict[str, Any]]) -> None:
    """``predict.py``'s JSON lines equal ``expected`` (probabilities and values within 1e-5)."""
    got = [json.loads(line) for line in printed.splitlines()]
    assert len(got) == len(expected)
    for row, (g, e) in enumerate(zip(got, expected, strict=True)):
        if "value" in e:
            assert set(g) == {"value"}
            assert math.isclose(g["value"], e["value"], rel_tol=1e-5, abs_tol=1e-5), row
        else:
            assert set(g) == {"label", "probabilities"}
            assert g["label"] == e["label"], row
            assert list(g["probabilities"]) == list(e["probabilities"]), row
            np.testing.assert_allclose(
                list(g["probabilities"].values()), list(e["probabilities"].values()), atol=1e-5
            )


def _csv_field(value: Any, image_style: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if image_style == "json":
            return json.dumps(value)
        return " ".join(f"{v:g}" for v in np.asarray(value).ravel())
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(path: Path, records: list[dict[str, Any]], image_style: str = "json") -> Path:
    """The rows as CSV with a header; images as a JSON list or as space-separated numbers."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(list(records[0]))
        for record in records:
            writer.writerow([_csv_field(v, image_style) for v in record.values()])
    return path


def write_json(path: Path, records: list[dict[str, Any]], wrapped: bool = False) -> Path:
    path.write_text(json.dumps({"records": records} if wrapped else records), encoding="utf-8")
    return path


def run_predict(
    bundle: Path,
    *args: str,
    python: str = sys.executable,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the bundle's ``predict.py`` as a device would: its own process, cwd the bundle."""
    return subprocess.run(
        [python, str(bundle / "predict.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=bundle,
        env=env if env is not None else {**os.environ, "PYTHONWARNINGS": "error"},
        timeout=120,
    )
