"""The server over real HTTP: V2 protocol, /predict, validation, overload, swaps, traffic split."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcycle import Project, load
from mlcycle.predictions import PredictionLog

ROWS = [
    {"income": 61.5, "city": "paris", "member": True},
    {"income": None, "city": "tokyo", "member": False},
    {"income": 38.0, "city": "lyon", "member": None},
]


def _v2(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "income",
                "shape": [len(rows)],
                "datatype": "FP32",
                "data": [r["income"] for r in rows],
            },
            {
                "name": "city",
                "shape": [len(rows)],
                "datatype": "BYTES",
                "data": [r["city"] for r in rows],
            },
            {
                "name": "member",
                "shape": [len(rows), 1],
                "datatype": "BOOL",
                "data": [r["member"] for r in rows],
            },
        ],
        **extra,
    }


def _expected(project_root: Path, ref: str) -> np.ndarray[Any, Any]:
    probabilities = load(ref, project=project_root).predict_proba(ROWS)
    return probabilities


def test_v2_protocol_metadata_health_and_infer(serve: Any, served_project: Path) -> None:
    with serve() as (url, _):
        assert httpx.get(f"{url}/v2").json()["name"] == "mlcycle"
        assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        meta = httpx.get(f"{url}/v2/models/loyalty").json()
        assert meta["versions"] == ["1"]
        assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
            "income": "FP32",
            "member": "FP32",
            "city": "BYTES",
        }
        assert httpx.get(f"{url}/v2/models/loyalty/versions/1/ready").json()["ready"] is True
        assert httpx.get(f"{url}/v2/models/other").status_code == 404

        answer = httpx.post(f"{url}/v2/models/loyalty/infer", json=_v2(ROWS, id="abc")).json()
        assert (answer["model_name"], answer["model_version"], answer["id"]) == (
            "loyalty",
            "1",
            "abc",
        )
        outputs = {o["name"]: o for o in answer["outputs"]}
        assert outputs["probabilities"]["shape"] == [3, 2]
        got = np.asarray(outputs["probabilities"]["data"]).reshape(3, 2)
        np.testing.assert_allclose(got, _expected(served_project, "loyalty@1"), atol=1e-6)
        assert outputs["label"]["datatype"] == "BYTES"

        only = httpx.post(
            f"{url}/v2/models/loyalty/versions/1/infer",
            json=_v2(ROWS[:1], outputs=[{"name": "label"}]),
        ).json()
        assert [o["name"] for o in only["outputs"]] == ["label"] and only["id"]


def test_tritonclient_talks_to_the_server(serve: Any, served_project: Path) -> None:
    import tritonclient.http as triton

    with serve() as (url, _):
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("loyalty")
        meta = client.get_model_metadata("loyalty")
        assert {i["name"] for i in meta["inputs"]} == {"income", "city", "member"}
        inputs = []
        income = triton.InferInput("income", [3], "FP32")
        income.set_data_from_numpy(np.array([61.5, np.nan, 38.0], dtype=np.float32))
        city = triton.InferInput("city", [3], "BYTES")
        city.set_data_from_numpy(np.array(["paris", "tokyo", "lyon"], dtype=object))
        member = triton.InferInput("member", [3], "FP32")
        member.set_data_from_numpy(np.array([1, 0, np.nan], dtype=np.float32))
        inputs = [income, city, member]
        result = client.infer(
            "loyalty",
            inputs,
            outputs=[
                triton.InferRequestedOutput("probabilities"),
                triton.InferRequestedOutput("label"),
            ],
        )
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), _expected(served_project, "loyalty@1"), atol=1e-6
        )
        assert result.get_response()["model_version"] == "1"
        assert result.as_numpy("label").shape == (3,)
        client.close()


def test_predict_route_feedback_and_the_prediction_log(serve: Any, served_project: Path) -> None:
    with serve(log_flush_s=0.1) as (url, _):
        answer = httpx.post(f"{url}/predict", json={"records": ROWS, "id": "req-42"}).json()
        assert answer["version"] == 1 and answer["request_id"] == "req-42"
        assert len(answer["labels"]) == 3
        np.testing.assert_allclose(
            [[p["no"], p["yes"]] for p in answer["probabilities"]],
            _expected(served_project, "loyalty@1"),
            atol=1e-6,
        )
        fed = httpx.post(
            f"{url}/feedback", json={"labels": [{"request_id": "req-42:0", "label": "yes"}]}
        )
        assert fed.json()["accepted"] == 1
        metrics = httpx.get(f"{url}/metrics").text
        assert 'mlcycle_requests_total{code="200",route="predict"}' in metrics
        assert 'mlcycle_model_version{role="primary"} 1.0' in metrics
    log = PredictionLog(served_project / ".mlcycle" / "log")
    logged = log.read("loyalty")
    log.close()
    mine = logged.filter(
        np.isin(
            np.asarray(logged.column("request_id").to_pylist()),
            ["req-42:0", "req-42:1", "req-42:2"],
        )
    )
    assert mine.num_rows == 3
    assert set(mine.column("source").to_pylist()) == {"serve"}
    assert mine.column("in.city").to_pylist() == ["paris", "tokyo", "lyon"]
    feedback = PredictionLog(served_project / ".mlcycle" / "log").read_feedback()
    assert "req-42:0" in feedback.column("request_id").to_pylist()


BAD = [
    (
        "/predict",
        {"records": [{"income": 1.0, "city": "paris"}]},
        422,
        "missing input column 'member'",
    ),
    ("/predict", {"records": [{**ROWS[0], "zip": 1}]}, 422, "unexpected column 'zip'"),
    (
        "/predict",
        {"records": [{**ROWS[0], "income": "lots"}]},
        422,
        "column 'income': value 'lots'",
    ),
    ("/predict", {"rows": []}, 400, 'expected {"records"'),
    ("/predict", {"records": [ROWS[0]] * 2000}, 422, "2000 rows: at most 1024"),
    ("/v2/models/loyalty/infer", {"inputs": []}, 400, "'inputs': expected a non-empty list"),
    (
        "/v2/models/loyalty/infer",
        _v2(ROWS)["inputs"][:2] and {"inputs": _v2(ROWS)["inputs"][:2]},
        422,
        "missing input column 'member'",
    ),
    (
        "/v2/models/loyalty/infer",
        {"inputs": [{**_v2(ROWS)["inputs"][0], "datatype": "BYTES"}]},
        400,
        "input 'income': datatype 'BYTES' does not fit a numeric input",
    ),
    (
        "/v2/models/loyalty/infer",
        {"inputs": [{**_v2(ROWS)["inputs"][0], "shape": [2]}]},
        400,
        "input 'income': 3 values in data, shape [2] needs 2",
    ),
    (
        "/v2/models/loyalty/infer",
        {"inputs": [{"name": "zip", "shape": [1], "datatype": "FP32", "data": [1]}]},
        400,
        "input 'zip' is not an input of the model",
    ),
]


def test_bad_requests_get_clear_errors_and_the_server_keeps_answering(
    serve: Any, served_project: Path
) -> None:
    with serve(max_body_bytes=200_000) as (url, _):
        for route, body, status, message in BAD:
            response = httpx.post(f"{url}{route}", json=body)
            assert response.status_code == status, (route, body, response.text)
            assert message in response.json()["error"], response.text
        not_json = httpx.post(
            f"{url}/predict", content=b"{oops", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
        huge = httpx.post(f"{url}/predict", content=b"x" * 300_000)
        assert huge.status_code == 413
        good = httpx.post(f"{url}/predict", json={"records": ROWS}).json()
        np.testing.assert_allclose(
            [[p["no"], p["yes"]] for p in good["probabilities"]],
            _expected(served_project, "loyalty@1"),
            atol=1e-6,
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
record = st.fixed_dictionaries(
    {},
    optional={"income": json_values, "city": json_values, "member": json_values, "x": json_values},
)
tensor = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["income", "city", "member", "nope"]) | json_values,
        "shape": st.lists(st.integers(-2, 5), max_size=3) | json_values,
        "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "BYTES", "X"]),
        "data": st.lists(json_values, max_size=6) | json_values,
    },
)


@pytest.mark.slow
def test_fuzzed_requests_never_crash_the_server(serve: Any, served_project: Path) -> None:
    with serve() as (url, _):
        client = httpx.Client(base_url=url)

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            st.one_of(
                st.tuples(
                    st.just("/predict"),
                    st.fixed_dictionaries({"records": st.lists(record, max_size=4)}),
                ),
                st.tuples(st.just("/predict"), json_values),
                st.tuples(
                    st.just("/v2/models/loyalty/infer"),
                    st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=4)}),
                ),
                st.tuples(st.just("/v2/models/loyalty/infer"), json_values),
                st.tuples(st.just("/feedback"), json_values),
            )
        )
        def check(case: tuple[str, Any]) -> None:
            route, body = case
            response = client.post(route, content=json.dumps(body))
            assert response.status_code in (200, 400, 413, 422), (route, body, response.text)
            if response.status_code != 200:
                assert response.json()["error"]

        check()
        good = client.post("/predict", json={"records": ROWS}).json()
        np.testing.assert_allclose(
            [[p["no"], p["yes"]] for p in good["probabilities"]],
            _expected(served_project, "loyalty@1"),
            atol=1e-6,
        )
        client.close()


segments = st.sampled_from(
    [
        "loyalty",
        "versions",
        "1",
        "2",
        "\u00b2",
        "\u0663",
        "%C2%B2",
        "%FF",
        "%00",
        "%2F",
        "-1",
        "99999999999999999999",
        "infer",
        "ready",
        "..",
        "",
        "x y",
        "\u00e9",
    ]
) | st.text(max_size=6)
paths = st.one_of(
    st.sampled_from(
        ["/predict", "/feedback", "/metrics", "/admin/reload", "/v2", "/v2/health/ready"]
    ),
    st.builds(
        lambda name, version, tail: f"/v2/models/{name}/versions/{version}{tail}",
        segments,
        segments,
        st.sampled_from(["", "/infer", "/ready"]),
    ),
    st.lists(segments, max_size=5).map(lambda parts: "/v2/models/" + "/".join(parts)),
)
header_values = st.sampled_from(
    [
        "0",
        "12",
        "\u00b2",
        "\u0663",
        "-1",
        "1e3",
        "99999999999999999999",
        "application/json",
        "application/octet-stream",
        "text/plain",
        "Bearer x",
        "null",
        "http://evil.example",
        "localhost",
        "evil.example",
    ]
) | st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=12
)
headers = st.dictionaries(
    st.sampled_from(
        [
            "inference-header-content-length",
            "content-type",
            "x-request-id",
            "x-request-key",
            "authorization",
            "origin",
            "host",
        ]
    ),
    header_values,
    max_size=4,
)
V2_BODY = _v2(ROWS[:1])


@pytest.mark.slow
def test_fuzzed_paths_and_headers_never_get_a_500(serve: Any) -> None:
    with serve(admin_token="s3cret") as (url, _):
        client = httpx.Client(base_url=url)

        @settings(
            max_examples=300,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            st.sampled_from(["GET", "POST"]),
            paths,
            headers,
            st.sampled_from([V2_BODY, {"records": ROWS[:1]}, {"labels": []}, {}, []]),
        )
        def check(method: str, path: str, extra: dict[str, str], body: Any) -> None:
            content = json.dumps(body).encode()
            # as bytes: latin-1 where it holds the text (the server reads headers so), else UTF-8
            raw = {
                k: v.encode("latin-1" if v.isascii() or max(v) < "\u0100" else "utf-8")
                for k, v in extra.items()
            }
            try:
                request = client.build_request(method, path, content=content, headers=raw)
            except (httpx.InvalidURL, ValueError):
                return  # not a request a client can send
            response = client.send(request)
            assert response.status_code < 500, (method, path, extra, response.text)
            if response.status_code >= 400:
                assert response.json()["error"], response.text

        check()
        assert client.post("/predict", json={"records": ROWS}).status_code == 200
        client.close()


def test_overload_answers_503_with_retry_after(serve: Any) -> None:
    # refused at once, not after waiting for room (which a fast model may well find)
    with serve(max_queue_rows=3, max_batch_rows=1, max_delay_ms=0, admission_wait_s=0) as (url, _):

        def call(_: int) -> httpx.Response:
            return httpx.post(f"{url}/predict", json={"records": ROWS}, timeout=30)

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            responses = list(pool.map(call, range(200)))
        codes = {r.status_code for r in responses}
        assert codes <= {200, 503}, codes
        assert 503 in codes and 200 in codes
        assert all(r.headers["retry-after"].isdigit() for r in responses if r.status_code == 503)
        assert httpx.post(f"{url}/predict", json={"records": ROWS}).status_code == 200


def test_concurrent_requests_are_batched(serve: Any) -> None:
    with serve(max_batch_rows=64, max_delay_ms=5) as (url, _):

        def call(_: int) -> int:
            return httpx.post(f"{url}/predict", json={"records": ROWS[:1]}, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            assert set(pool.map(call, range(300))) == {200}
        metrics = httpx.get(f"{url}/metrics").text
    lines = metrics.splitlines()
    count = float(next(x for x in lines if x.startswith("mlcycle_batch_rows_count")).split()[-1])
    assert count < 300  # fewer ONNX Runtime calls than requests: they were merged


@pytest.mark.slow
def test_hot_swap_under_load_fails_no_request(serve: Any, served_project: Path) -> None:
    with serve(poll_s=0.2) as (url, _):
        stop = threading.Event()
        seen: list[list[int]] = [[] for _ in range(4)]
        failures: list[str] = []

        def client(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                while not stop.is_set():
                    r = c.post("/predict", json={"records": ROWS[:1]})
                    if r.status_code != 200:
                        failures.append(r.text)
                    else:
                        seen[i].append(r.json()["version"])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        with Project.open(served_project) as project:
            project.store.registry.set_alias("loyalty", 2, "champion", actor="test", reason="swap")
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not all(s and s[-1] == 2 for s in seen):
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
            with Project.open(served_project) as project:
                project.store.registry.set_alias(
                    "loyalty", 1, "champion", actor="test", reason="back"
                )
        assert failures == []
        for versions in seen:
            assert versions[0] == 1 and versions[-1] == 2
            switched = versions.index(2)
            assert set(versions[switched:]) == {2}  # once swapped, never back


def test_canary_is_sticky_by_key_and_shadow_never_answers(serve: Any, served_project: Path) -> None:
    with serve(canary="loyalty@challenger", canary_percent=50) as (url, _):
        by_key = {}
        for key in (f"user-{i}" for i in range(40)):
            versions = {
                httpx.post(
                    f"{url}/predict", json={"records": ROWS[:1]}, headers={"x-request-key": key}
                ).json()["version"]
                for _ in range(3)
            }
            assert len(versions) == 1  # sticky
            by_key[key] = versions.pop()
        assert set(by_key.values()) == {1, 2}
    with serve(shadow="loyalty@challenger", log_flush_s=0.1) as (url, _):
        for i in range(5):
            answer = httpx.post(
                f"{url}/predict", json={"records": ROWS[:1], "id": f"shadowed-{i}"}
            ).json()
            assert answer["version"] == 1
        time.sleep(0.3)
    log = PredictionLog(served_project / ".mlcycle" / "log")
    table = log.read("loyalty")
    log.close()
    shadow = [
        (rid, v)
        for rid, v, src in zip(
            table.column("request_id").to_pylist(),
            table.column("version").to_pylist(),
            table.column("source").to_pylist(),
            strict=True,
        )
        if src == "shadow" and rid.startswith("shadowed-")
    ]
    assert sorted(shadow) == [(f"shadowed-{i}", 2) for i in range(5)]


def test_admin_routes_need_the_token(serve: Any) -> None:
    with serve(admin_token="s3cret") as (url, _):
        assert httpx.post(f"{url}/admin/reload").status_code == 401
        assert (
            httpx.post(f"{url}/admin/reload", headers={"authorization": "Bearer nope"}).status_code
            == 401
        )
        ok = httpx.post(f"{url}/admin/reload", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["version"] == 1
    with serve() as (url, _):
        assert httpx.post(f"{url}/admin/reload").status_code == 403


def test_the_server_never_imports_torch(served_project: Path) -> None:
    code = (
        "import sys\n"
        "from mlcycle.serve import ServeSettings, create_app\n"
        "from starlette.testclient import TestClient\n"
        f"app = create_app(ServeSettings(project={str(served_project)!r}, ref='loyalty@champion', poll_s=0))\n"
        "with TestClient(app, base_url='http://localhost') as c:\n"
        "    r = c.post('/predict', json={'records': [{'income': 1.0, 'city': 'paris', 'member': True}]})\n"
        "    print(r.status_code, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", "False"]
