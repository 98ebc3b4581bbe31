"""A model whose inputs are all numbers (breast_cancer, 30 features) over real HTTP.

Such requests take the server's fast paths: the prediction routes answered
straight from the ASGI scope, all inputs converted as one block, batches and
log rows moved as one array. These tests check that the answers, the batches,
the log and the errors are those of the general path.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlcycle import Project, load
from mlcycle.data import resolve_source
from mlcycle.predictions import PredictionLog
from mlcycle.registry import register
from mlcycle.serve import ServeSettings, ServingApp, create_app, serve_in_thread
from mlcycle.train import train


@pytest.fixture(scope="module")
def numeric_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(tmp_path_factory.mktemp("serve-numeric")) / "proj"
    with Project.init(root, name="proj") as project:
        project.datasets.add("sklearn:breast_cancer", name="cancer")
        run = train(project, data="cancer", overrides={"max_epochs": 3, "seed": 0}).run_id
        register(project, run, "cancer", alias="champion")
    return root


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    table = resolve_source("sklearn:breast_cancer").read()
    rows = table.drop_columns(["target"]).slice(0, 40).to_pylist()
    return [{k: float(v) for k, v in row.items()} for row in rows]


@pytest.fixture
def server(numeric_project: Path) -> Iterator[tuple[str, ServingApp]]:
    settings = ServeSettings(
        project=numeric_project, ref="cancer@champion", poll_s=0, log_flush_s=0.1
    )
    app = create_app(settings)
    with serve_in_thread(app) as url:
        yield url, app


def _v2(rows: list[dict[str, Any]], id_: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": "FP32",
                "data": [r[name] for r in rows],
            }
            for name in rows[0]
        ]
    }
    if id_ is not None:
        body["id"] = id_
    return body


def test_answers_batches_and_log_match_the_general_path(
    server: tuple[str, ServingApp], numeric_project: Path, records: list[dict[str, Any]]
) -> None:
    url, _ = server
    expected = load("cancer@champion", project=numeric_project).predict_proba(records)
    with httpx.Client(base_url=url) as client:
        whole = client.post("/v2/models/cancer/infer", json=_v2(records, "all")).json()
        probabilities = next(o for o in whole["outputs"] if o["name"] == "probabilities")
        np.testing.assert_allclose(
            np.reshape(probabilities["data"], (len(records), -1)), expected, atol=1e-6
        )

    def one(i: int) -> tuple[int, Any]:
        route = "/predict" if i % 2 else "/v2/models/cancer/infer"
        body = (
            {"records": [records[i]], "id": f"one-{i}"} if i % 2 else _v2([records[i]], f"one-{i}")
        )
        return i, httpx.post(f"{url}{route}", json=body, timeout=30).json()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:  # concurrent: batches merge
        answers = dict(pool.map(one, range(len(records))))
    for i, answer in answers.items():
        if i % 2:
            got = list(answer["probabilities"][0].values())
        else:
            got = next(o for o in answer["outputs"] if o["name"] == "probabilities")["data"]
        np.testing.assert_allclose(got, expected[i], atol=1e-6)
    metrics = httpx.get(f"{url}/metrics").text
    calls = float(metrics.split("mlcycle_batch_rows_count ")[1].split()[0])
    rows = float(metrics.split("mlcycle_batch_rows_sum ")[1].split()[0])
    assert rows == 2 * len(records) and calls < rows  # some requests shared an ONNX call

    wanted = {f"one-{i}" for i in (0, 1, 17, 38)}
    deadline = time.monotonic() + 10  # the server writes its log every 0.1 s
    while True:
        log = PredictionLog(numeric_project / ".mlcycle" / "log")
        logged = log.read("cancer")
        log.close()
        ids = logged.column("request_id").to_pylist()
        if wanted <= set(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for i in (0, 1, 17, 38):
        row = ids.index(f"one-{i}")
        for name in ("mean_radius", "worst_symmetry"):
            assert logged.column(f"in.{name}")[row].as_py() == pytest.approx(
                records[i][name], rel=1e-6
            )


def test_values_the_block_cannot_take_are_answered_as_in_process(
    server: tuple[str, ServingApp], numeric_project: Path, records: list[dict[str, Any]]
) -> None:
    url, _ = server
    odd = [dict(records[0]), dict(records[1]), dict(records[2])]
    odd[0]["mean_radius"] = None  # missing: NaN, which the model takes
    odd[1]["mean_texture"] = "17.5"  # a number written as text
    odd[2]["mean_area"] = True
    expected = load("cancer@champion", project=numeric_project).predict_proba(odd)
    answer = httpx.post(f"{url}/predict", json={"records": odd}).json()
    got = [list(p.values()) for p in answer["probabilities"]]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    bad = httpx.post(f"{url}/predict", json={"records": [{**records[0], "mean_area": "big"}]})
    assert bad.status_code == 422
    assert bad.json()["error"] == "column 'mean_area': value 'big' at row 0 is not a number"


def test_routes_methods_and_internal_errors(
    server: tuple[str, ServingApp], records: list[dict[str, Any]]
) -> None:
    url, app = server
    with httpx.Client(base_url=url) as client:
        assert client.get("/predict").status_code == 405
        assert client.get("/v2/models/cancer/infer").status_code == 405
        assert (
            client.post("/v2/models/cancer/versions/1/infer", json=_v2(records[:1])).json()[
                "model_version"
            ]
            == "1"
        )
        missing = client.post("/v2/models/cancer/versions/7/infer", json=_v2(records[:1]))
        assert missing.status_code == 404 and "version 7" in missing.json()["error"]
        other = client.post("/v2/models/dogs/infer", json=_v2(records[:1]))
        assert other.status_code == 404 and "'dogs' is not served here" in other.json()["error"]
        assert client.post("/v2/models//infer", json=_v2(records[:1])).status_code == 404
        assert client.post("/predictions", json={"records": records[:1]}).status_code == 404

        # a bug in a route: a 500 in the protocol's error form, counted, and the server goes on
        server_state = app.state.server
        original = server_state.predict_rows

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        server_state.predict_rows = broken
        try:
            failed = client.post("/predict", json={"records": records[:1]})
        finally:
            server_state.predict_rows = original
        assert failed.status_code == 500 and failed.json() == {"error": "internal server error"}
        assert client.post("/predict", json={"records": records[:1]}).status_code == 200
        metrics = client.get("/metrics").text
        assert 'mlcycle_requests_total{code="500",route="predict"} 1.0' in metrics
        assert 'mlcycle_requests_total{code="405",route="predict"}' not in metrics


def test_values_not_finite_in_float32_are_refused_on_the_fast_paths(
    server: tuple[str, ServingApp], records: list[dict[str, Any]]
) -> None:
    url, _ = server
    end = "is not a finite float32 (expected a magnitude up to 3.402823e+38)"
    rows = [dict(r) for r in records[:3]]
    rows[2]["mean_area"] = 1e39
    with httpx.Client(base_url=url) as client:
        for body, path in ((_v2(rows), "/v2/models/cancer/infer"), ({"records": rows}, "/predict")):
            got = client.post(path, json=body)
            assert got.status_code == 422, got.text
            assert got.json()["error"] == f"column 'mean_area': value 1e+39 at row 2 {end}"
        # tritonclient's binary form: one FP32 tensor holding an infinity
        body = _v2(records[:2])
        area = next(t for t in body["inputs"] if t["name"] == "worst_area")
        del area["data"]
        area["parameters"] = {"binary_data_size": 8}
        head = json.dumps(body).encode()
        blob = np.array([1.0, -np.inf], dtype=np.float32).tobytes()
        got = client.post(
            "/v2/models/cancer/infer",
            content=head + blob,
            headers={
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(head)),
            },
        )
        assert got.status_code == 422, got.text
        assert got.json()["error"] == f"column 'worst_area': value -inf at row 1 {end}"
        assert client.post("/predict", json={"records": records[:3]}).status_code == 200
