"""Quantized variants: measured against the original, judged, registered with lineage, deployable."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import mlcycle
from mlcycle import Project
from mlcycle.compress import Variant, compress
from mlcycle.compress._compress import _judge
from mlcycle.compress._measure import slow_ops, true_targets
from mlcycle.errors import DataError, NotFoundError, SpecError
from mlcycle.train import train
from mlcycle.workflow import register
from tests.compress._variants import register_by_hand

pytestmark = pytest.mark.slow


def _mixed(rows: int = 400) -> pd.DataFrame:
    """A table with a categorical and a boolean column: the graph has string inputs."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=rows)
    z = rng.normal(size=rows)
    city = rng.choice(["lyon", "nice", "paris"], size=rows)
    member = rng.choice([True, False], size=rows)
    y = np.where((x + 0.5 * z > 0) ^ (city == "nice"), "yes", "no")
    return pd.DataFrame({"x": x, "z": z, "member": member, "city": city, "y": y})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("compress")
    _mixed().to_csv(root / "mixed.csv", index=False)
    with Project.init(root, name="compress") as project:
        mlp = train(
            project,
            data="sklearn:digits",
            overrides={"max_epochs": 8, "model.hidden": [128, 64]},
            quiet=True,
        )
        register(project, mlp.run_id, "digits")
        cnn = train(
            project,
            data="digits",
            model="cnn",
            overrides={"max_epochs": 3, "model.channels": [16, 32]},
            quiet=True,
        )
        register(project, cnn.run_id, "digits-cnn")
        project.datasets.add(str(root / "mixed.csv"), target="y")
        mixed = train(project, data="mixed", overrides={"max_epochs": 5}, quiet=True)
        register(project, mixed.run_id, "mixed")
        yield project


def test_static_int8_of_an_mlp_is_measured_registered_and_named_after_its_parent(
    project: Project,
) -> None:
    result = compress(project, "digits@1", methods=["static-int8"], batch=256, max_drop=5)
    original, variant = result.variants
    assert original.method == "original" and variant.method == "static-int8"
    assert variant.size_bytes < 0.5 * original.size_bytes
    assert "QuantizeLinear" in {n for n in _ops(variant.onnx)}
    # the recorded accuracy is the test split's, as the deployed graph answers it
    split = project.datasets.load_split("digits@1")["test"]
    labels = np.asarray(split.column("target").cast(pa.string()).to_pylist())
    if variant.verdict in ("kept", "chosen"):
        assert result.registered, "a kept variant is registered"
        derived = project.store.registry.get(result.registered[0])
        assert derived.lineage["derived_from"] == {
            "model": "digits",
            "version": 1,
            "method": "static-int8",
            "params": variant.params,
        }
        assert derived.metrics["compression"]["parent_size_bytes"] == original.size_bytes
        served = mlcycle.load(derived.ref, project=project)
        accuracy = float(np.mean(served.predict(split).labels == labels))
        assert derived.metrics["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        card = project.artifacts.read_bytes(derived.files["card.md"]).decode()
        assert "derived from" in card and "digits@1 by static-int8" in card
    else:
        assert not result.registered
        assert variant.reason, "a rejected variant says why"
    assert variant.test["accuracy"] is not None
    assert variant.agreement["label_agreement"] > 0.9
    assert Path(result.report or "").exists()


def test_auto_never_chooses_a_variant_slower_than_its_parent(project: Project) -> None:
    """On a CNN dynamic int8 turns convolutions into ConvInteger: measured, and judged by it."""
    result = compress(project, "digits-cnn@1", auto=True, batch=64, max_drop=5, register=False)
    original = result.variants[0]
    by_method = {v.method: v for v in result.variants}
    dynamic = by_method["dynamic-int8"]
    assert "ConvInteger" in slow_ops(dynamic.onnx)
    for v in result.variants[1:]:
        if v.verdict in ("kept", "chosen"):
            assert v.latency_ms[64] * 1.05 <= original.latency_ms[64], v
        if v.latency_ms.get(64, 0) > original.latency_ms[64]:
            assert v.verdict in ("rejected", "reported")
            assert "slower" in v.reason or v.method == "fp16"
    if dynamic.latency_ms[64] > original.latency_ms[64]:
        assert "ConvInteger" in dynamic.reason
    assert by_method["fp16"].verdict == "reported"
    pruned = by_method["prune"]
    assert pruned.parameters is not None
    assert pruned.params["parameters_after"] < pruned.params["parameters_before"]
    assert pruned.size_bytes < original.size_bytes
    assert by_method["prune+static-int8"].size_bytes < pruned.size_bytes


def test_a_pruned_variant_registers_with_its_own_parity_check_and_its_parent(
    project: Project,
) -> None:
    # At batch 256 a network of a quarter of the multiply-adds is faster beyond doubt.
    result = compress(
        project, "digits@1", methods=["prune"], max_drop=100, batch=256, prune_ratio=0.5
    )
    variant = result.variants[1]
    assert result.registered, variant.reason
    derived = project.store.registry.get(result.registered[0])
    assert derived.lineage["derived_from"]["method"] == "prune"
    assert derived.lineage["derived_from"]["params"]["parameters_after"] == variant.parameters
    assert derived.metrics["parity"]["labels_identical"] is True  # against its own torch graph
    assert "weights.safetensors" in derived.files


def test_the_judge_keeps_only_what_is_faster_smaller_and_close_enough() -> None:
    def v(method: str, size: int, ms: float, accuracy: float) -> Variant:
        return Variant(
            method,
            {},
            onnx=b"",
            size_bytes=size,
            latency_ms={64: ms},
            test={"accuracy": accuracy},
        )

    variants = [
        v("original", 1000, 10.0, 0.950),
        v("slower", 300, 12.0, 0.950),
        v("too-lossy", 300, 5.0, 0.930),
        v("noise", 300, 9.9, 0.950),
        v("good", 400, 6.0, 0.948),
        v("better", 300, 8.0, 0.951),
        v("fp16", 500, 2.0, 0.950),
    ]
    _judge(variants, "accuracy", "classification", 0.5, 64)
    verdicts = {x.method: x.verdict for x in variants[1:]}
    assert verdicts == {
        "slower": "rejected",
        "too-lossy": "rejected",
        "noise": "rejected",
        "good": "kept",
        "better": "kept",
        "fp16": "reported",
    }
    reasons = {x.method: x.reason for x in variants[1:]}
    assert "1.20x slower at batch 64" in reasons["slower"]
    assert "drops 2.00 points > 0.5" in reasons["too-lossy"]
    assert "not faster" in reasons["noise"]


def test_a_graph_with_string_inputs_quantizes_and_answers_like_its_parent(
    project: Project,
) -> None:
    result = compress(
        project, "mixed@1", methods=["dynamic-int8", "static-int8"], max_drop=100, register=False
    )
    for variant in result.variants[1:]:
        assert variant.error is None, variant.error
        assert variant.agreement["label_agreement"] >= 0.9
        assert variant.test["accuracy"] is not None


def test_bad_input_is_refused_in_one_line(project: Project, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"--method 'int4' is not one of dynamic-int8"):
        compress(project, "digits@1", methods=["int4"])
    with pytest.raises(SpecError, match=r"--max-drop: 150.0 is not between 0 and 100"):
        compress(project, "digits@1", methods=["static-int8"], max_drop=150.0)
    with pytest.raises(SpecError, match=r"--calibration: 'kl' is not one of minmax, entropy"):
        compress(project, "digits@1", methods=["static-int8"], calibration="kl")
    with pytest.raises(SpecError, match="name a --method"):
        compress(project, "digits@1")
    with pytest.raises(NotFoundError):
        compress(project, "nosuch@1", methods=["static-int8"])
    rows = project.datasets.load_split("mixed@1")["train"].to_pandas().drop(columns=["city"])
    rows.to_csv(tmp_path / "calibration.csv", index=False)
    with pytest.raises(DataError, match="city"):
        compress(
            project,
            "mixed@1",
            methods=["static-int8"],
            calibration_data=tmp_path / "calibration.csv",
        )


def test_a_variant_serves_scores_and_runs_on_a_bare_device(
    project: Project, tmp_path: Path
) -> None:
    result = compress(project, "digits@1", methods=["dynamic-int8"], max_drop=100, batch=1)
    variant = result.variants[1]
    # Not faster at batch 1 here, it is registered by hand to deploy it.
    ref = result.registered[0] if result.registered else register_by_hand(project, result).ref
    test = project.datasets.load_split("digits@1")["test"].slice(0, 40)
    expected = mlcycle.load(ref, project=project).predict(test).labels
    features = test.drop_columns(["target"])
    import pyarrow.parquet as pq

    pq.write_table(features, tmp_path / "rows.parquet")
    cli = [str(Path(sys.executable).parent / "mlcycle"), "--project", str(project.root)]
    done = subprocess.run(
        [*cli, "score", ref, str(tmp_path / "rows.parquet"), str(tmp_path / "scored.parquet")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    scored = pq.read_table(tmp_path / "scored.parquet")
    assert scored.column("label").to_pylist() == list(expected)
    done = subprocess.run(
        [*cli, "export", ref, "--edge", str(tmp_path / "bundle")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bundle" / "model.onnx").read_bytes() == variant.onnx
    from mlcycle.serve import ServeSettings, create_app, serve_in_thread

    settings = ServeSettings(project=project.root, ref=ref, poll_s=0.2, log_flush_s=0.1)
    with serve_in_thread(create_app(settings)) as url:
        body = json.dumps({"records": features.slice(0, 5).to_pylist()}).encode()
        request = urllib.request.Request(
            f"{url}/predict", body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            answer = json.loads(reply.read())
    assert answer["labels"] == [str(x) for x in expected[:5]]


def test_true_targets_index_the_signature_classes() -> None:
    table = pa.table({"y": ["b", "a", "b"]})
    assert true_targets(
        table, {"task": "binary", "target": "y", "classes": ["a", "b"]}
    ).tolist() == [
        1,
        0,
        1,
    ]


def _ops(graph: bytes) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load_from_string(graph).graph.node}


def test_the_report_opens_offline_and_draws_the_variants(project: Project, tmp_path: Path) -> None:
    import shutil

    from tests.e2e.test_report_browser import _chromium

    result = compress(
        project, "digits@1", methods=["dynamic-int8", "static-int8", "fp16"], register=False
    )
    page = tmp_path / "alone" / "compress.html"  # nothing beside the file can help it render
    page.parent.mkdir()
    shutil.copy(result.report or "", page)
    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert html.count('class="main-svg"') >= 1
    for v in result.variants:
        assert v.method in html
        assert v.verdict in html
    for v in result.variants[1:]:
        assert (v.reason or "")[:30].replace("&", "&amp;") in html
