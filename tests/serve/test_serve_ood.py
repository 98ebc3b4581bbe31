"""OOD flags over real HTTP: /predict and V2 answers, the prediction log, the metric."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlcycle import Project
from mlcycle.monitor import fit_ood_detector
from mlcycle.predictions import PredictionLog
from mlcycle.registry import register
from mlcycle.serve import ServeSettings, create_app, serve_in_thread
from mlcycle.train import train
from tests.registry.conftest import mixed_table

TYPICAL = {"income": 52.0, "city": "paris", "member": True}
ABSURD = {"income": 1e6, "city": "atlantis", "member": False}


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """One trained run, registered as three versions: with a detector, without, unreadable."""
    root = Path(tmp_path_factory.mktemp("serve-ood")) / "proj"
    with Project.init(root, name="proj") as project:
        project.datasets.add(mixed_table(), name="mixed", target="y")
        run = train(project, data="mixed", overrides={"max_epochs": 5, "seed": 1}).run_id
        record = register(project, run, "loyalty")
        parts = project.datasets.load_split("mixed")
        detector = fit_ood_detector(
            parts["train"], parts["validation"], record.signature, quantile=0.99
        )
        base = {path: sha for path, sha in record.files.items() if path != "ood.json"}

        def add(alias: str, ood: dict[str, Any] | None) -> int:
            files = dict(base)
            if ood is not None:
                blob = json.dumps(ood).encode()
                files["ood.json"] = project.artifacts.put_bytes(blob, "application/json").sha256
            version = project.store.registry.add_version(
                "loyalty",
                run_id=run,
                task=record.task,
                metrics=record.metrics,
                lineage=record.lineage,
                signature=record.signature,
                files=files,
                actor="test",
            ).version
            project.store.registry.set_alias("loyalty", version, alias, actor="test")
            return version

        numbers = {
            "guarded": add("guarded", detector.to_dict()),
            "plain": add("plain", None),
            "odd": add("odd", {**detector.to_dict(), "format": "mlcycle-ood/9"}),
        }
    return root, numbers


@pytest.fixture
def serve(versions: tuple[Path, dict[str, int]]) -> Callable[[str], Any]:
    @contextmanager
    def start(alias: str) -> Iterator[str]:
        settings = ServeSettings(project=versions[0], ref=f"loyalty@{alias}", poll_s=0)
        with serve_in_thread(create_app(settings)) as url:
            yield url

    return start


def _v2(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def column(name: str, datatype: str) -> dict[str, Any]:
        return {
            "name": name,
            "shape": [len(rows)],
            "datatype": datatype,
            "data": [r[name] for r in rows],
        }

    return {"inputs": [column("income", "FP32"), column("city", "BYTES"), column("member", "BOOL")]}


def _logged(root: Path, version: int) -> Any:
    table = PredictionLog(root / ".mlcycle" / "log").read("loyalty")
    return table.filter(np.asarray(table.column("version")) == version)


def test_answers_carry_the_flag_and_the_log_and_metrics_count_it(
    serve: Any, versions: tuple[Path, dict[str, int]]
) -> None:
    root, numbers = versions
    with serve("guarded") as url:
        answer = httpx.post(f"{url}/predict", json={"records": [TYPICAL, ABSURD]}).json()
        assert answer["version"] == numbers["guarded"]
        assert answer["ood"] == [False, True]
        assert len(answer["ood_score"]) == 2 and answer["ood_score"][0] < answer["ood_score"][1]
        assert len(answer["labels"]) == 2  # the answer itself is untouched

        single = httpx.post(f"{url}/predict", json={"records": [ABSURD]}).json()
        assert single["ood"] == [True]

        v2 = httpx.post(f"{url}/v2/models/loyalty/infer", json=_v2([TYPICAL, ABSURD])).json()
        assert v2["parameters"]["ood"] == [False, True]
        assert len(v2["parameters"]["ood_score"]) == 2
        assert {o["name"] for o in v2["outputs"]} == {"label", "probabilities"}

        metrics = httpx.get(f"{url}/metrics").text
        assert f'mlcycle_ood_rows_total{{version="{numbers["guarded"]}"}} 3.0' in metrics
    logged = _logged(root, numbers["guarded"])
    assert logged.num_rows == 5
    assert str(logged.schema.field("ood_score").type) == "float"
    assert str(logged.schema.field("ood").type) == "bool"
    assert logged.column("ood").to_pylist() == [False, True, True, False, True]
    scores = logged.column("ood_score").to_pylist()
    assert scores[:2] == pytest.approx(answer["ood_score"])


def test_a_version_without_a_detector_answers_as_before(
    serve: Any, versions: tuple[Path, dict[str, int]]
) -> None:
    root, numbers = versions
    for alias in ("plain", "odd"):  # no ood.json; an ood.json in a format it cannot read
        with serve(alias) as url:
            answer = httpx.post(f"{url}/predict", json={"records": [TYPICAL, ABSURD]}).json()
            assert answer["version"] == numbers[alias]
            assert "ood" not in answer and "ood_score" not in answer
            v2 = httpx.post(f"{url}/v2/models/loyalty/infer", json=_v2([ABSURD])).json()
            assert "parameters" not in v2
            assert "mlcycle_ood_rows_total{" not in httpx.get(f"{url}/metrics").text
        logged = _logged(root, numbers[alias])
        assert logged.num_rows == 3
        for column in ("ood", "ood_score"):  # absent from its segments: null beside others'
            assert column not in logged.column_names or logged.column(column).null_count == 3
