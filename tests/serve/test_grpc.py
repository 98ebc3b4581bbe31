"""The Open Inference Protocol over gRPC: tritonclient.grpc gets the answers REST gives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from mlcycle.predictions import PredictionLog
from mlcycle.serve import ServeSettings
from mlcycle.serve.proto import grpc_predict_v2_pb2 as pb
from mlcycle.serve.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.serve.test_server import ROWS, _v2

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _inputs(rows: list[dict[str, Any]]) -> list[triton.InferInput]:
    """The rows as tritonclient sends them: each input's values raw, in its datatype."""
    n = len(rows)
    income = triton.InferInput("income", [n], "FP32")
    income.set_data_from_numpy(
        np.array([np.nan if r["income"] is None else r["income"] for r in rows], np.float32)
    )
    city = triton.InferInput("city", [n], "BYTES")
    city.set_data_from_numpy(np.array([r["city"] for r in rows], dtype=object))
    member = triton.InferInput("member", [n, 1], "BOOL")
    member.set_data_from_numpy(np.array([[bool(r["member"])] for r in rows]))
    return [income, city, member]


def _grpc_error(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_tritonclient_grpc_gets_the_same_answers_as_rest(serve: Any, served_project: Path) -> None:
    port = _free_port()
    rows = [{**r, "member": bool(r["member"])} for r in ROWS]  # gRPC BOOL has no missing value
    request_id = f"grpc-{uuid.uuid4().hex[:8]}"
    with serve(grpc_port=port, log_flush_s=0.05) as (url, _):
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("loyalty") and client.is_model_ready("loyalty", "1")
        server = client.get_server_metadata()
        assert (server.name, server.version) == (
            httpx.get(f"{url}/v2").json()["name"],
            httpx.get(f"{url}/v2").json()["version"],
        )
        meta = client.get_model_metadata("loyalty")
        rest_meta = httpx.get(f"{url}/v2/models/loyalty").json()
        assert (meta.name, list(meta.versions), meta.platform) == (
            rest_meta["name"],
            rest_meta["versions"],
            rest_meta["platform"],
        )
        for kind in ("inputs", "outputs"):
            assert [
                {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                for t in getattr(meta, kind)
            ] == rest_meta[kind]

        result = client.infer("loyalty", _inputs(rows), request_id=request_id)
        rest = httpx.post(f"{url}/v2/models/loyalty/infer", json=_v2(rows)).json()
        by_name = {o["name"]: o for o in rest["outputs"]}
        np.testing.assert_array_equal(
            result.as_numpy("probabilities"),
            np.asarray(by_name["probabilities"]["data"], np.float32).reshape(3, 2),
        )
        assert [v.decode() for v in result.as_numpy("label")] == by_name["label"]["data"]
        response = result.get_response()
        assert (response.model_name, response.model_version, response.id) == (
            "loyalty",
            rest["model_version"],
            request_id,
        )
        only = client.infer(
            "loyalty", _inputs(rows[:1]), outputs=[triton.InferRequestedOutput("label")]
        )
        assert [o.name for o in only.get_response().outputs] == ["label"]
        client.close()

        # typed contents instead of raw bytes: answered in typed contents, the same values
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            typed = pb.ModelInferRequest(model_name="loyalty")
            income = typed.inputs.add(name="income", datatype="FP32", shape=[3])
            income.contents.fp32_contents.extend(
                [np.nan if r["income"] is None else r["income"] for r in rows]
            )
            city = typed.inputs.add(name="city", datatype="BYTES", shape=[3])
            city.contents.bytes_contents.extend(r["city"].encode() for r in rows)
            member = typed.inputs.add(name="member", datatype="BOOL", shape=[3])
            member.contents.bool_contents.extend(r["member"] for r in rows)
            answer = stub.ModelInfer(typed)
        assert not answer.raw_output_contents
        typed_out = {o.name: o for o in answer.outputs}
        np.testing.assert_array_equal(
            typed_out["probabilities"].contents.fp32_contents, by_name["probabilities"]["data"]
        )
        assert [v.decode() for v in typed_out["label"].contents.bytes_contents] == by_name["label"][
            "data"
        ]

        metrics = httpx.get(f"{url}/metrics").text
        for route in ("grpc_live", "grpc_ready", "grpc_model_ready", "grpc_metadata"):
            assert f'mlcycle_requests_total{{code="OK",route="{route}"}}' in metrics
        assert 'mlcycle_requests_total{code="OK",route="grpc_infer"} 3.0' in metrics
        assert 'mlcycle_request_seconds_count{route="grpc_infer"} 3.0' in metrics

    log = PredictionLog(served_project / ".mlcycle" / "log")
    logged = log.read("loyalty")
    log.close()
    ids = logged.column("request_id").to_pylist()
    mine = logged.filter(np.isin(np.asarray(ids), [f"{request_id}:{i}" for i in range(3)]))
    assert mine.num_rows == 3
    assert set(mine.column("source").to_pylist()) == {"serve"}
    assert mine.column("in.city").to_pylist() == [r["city"] for r in rows]
    assert mine.column("label").to_pylist() == by_name["label"]["data"]


def test_grpc_refuses_as_rest_does_with_its_status_codes(serve: Any) -> None:
    port = _free_port()
    rows = [{**r, "member": bool(r["member"])} for r in ROWS]
    with serve(grpc_port=port) as (url, _):
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")

        # an input of the wrong datatype: the message REST gives, naming the input
        wrong = _inputs(rows)
        wrong[0] = triton.InferInput("income", [3], "BYTES")
        wrong[0].set_data_from_numpy(np.array(["a", "b", "c"], dtype=object))
        error = _grpc_error(lambda: client.infer("loyalty", wrong))
        body = _v2(rows)
        body["inputs"][0] = {
            "name": "income",
            "shape": [3],
            "datatype": "BYTES",
            "data": list("abc"),
        }
        rest = httpx.post(f"{url}/v2/models/loyalty/infer", json=body)
        assert rest.status_code == 400
        assert error.status() == "StatusCode.INVALID_ARGUMENT"
        assert error.message() == rest.json()["error"]
        assert "input 'income'" in error.message()

        # an input the model does not have, and too few values for a shape
        extra = triton.InferInput("age", [3], "FP32")
        extra.set_data_from_numpy(np.zeros(3, np.float32))
        error = _grpc_error(lambda: client.infer("loyalty", [*_inputs(rows), extra]))
        assert error.status() == "StatusCode.INVALID_ARGUMENT"
        assert "input 'age' is not an input of the model" in error.message()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            short = pb.ModelInferRequest(model_name="loyalty")
            short.inputs.add(
                name="income", datatype="FP32", shape=[2]
            ).contents.fp32_contents.append(1.0)
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(short)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "input 'income': 1 values in data, shape [2] needs 2" in caught.value.details()
            mismatched = pb.ModelInferRequest(model_name="loyalty", raw_input_contents=[b"\0" * 4])
            mismatched.inputs.add(name="income", datatype="FP32", shape=[1])
            mismatched.inputs.add(name="city", datatype="BYTES", shape=[1])
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(mismatched)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "raw_input_contents: 1 entries for 2 inputs" in caught.value.details()

        # a value the model cannot take: REST's 422, gRPC's INVALID_ARGUMENT
        inf = _inputs(rows)
        inf[0].set_data_from_numpy(np.array([np.inf, 1.0, 2.0], np.float32))
        error = _grpc_error(lambda: client.infer("loyalty", inf))
        assert error.status() == "StatusCode.INVALID_ARGUMENT" and "income" in error.message()

        # models and versions that are not served here
        error = _grpc_error(lambda: client.infer("dogs", _inputs(rows)))
        assert error.status() == "StatusCode.NOT_FOUND"
        assert error.message() == "model 'dogs' is not served here (serving 'loyalty')"
        error = _grpc_error(lambda: client.infer("loyalty", _inputs(rows), model_version="7"))
        assert error.status() == "StatusCode.NOT_FOUND" and "version 7" in error.message()
        error = _grpc_error(lambda: client.get_model_metadata("dogs"))
        assert error.status() == "StatusCode.NOT_FOUND"
        client.close()

        metrics = httpx.get(f"{url}/metrics").text
        assert 'mlcycle_requests_total{code="INVALID_ARGUMENT",route="grpc_infer"} 5.0' in metrics
        assert 'mlcycle_requests_total{code="NOT_FOUND",route="grpc_infer"} 2.0' in metrics


def test_grpc_binds_loopback_unless_told_otherwise() -> None:
    assert ServeSettings(project=Path("p"), ref="m@champion", grpc_port=9000).grpc_host == (
        "127.0.0.1"
    )


@pytest.mark.slow  # a real `mlcycle serve` process: 5-20 s to start on a busy machine
def test_mlcycle_serve_grpc_port(served_project: Path) -> None:
    port, grpc_port = _free_port(), _free_port()
    args = [MLCYCLE, "-p", str(served_project), "serve", "loyalty@champion"]
    args += ["--port", str(port), "--grpc-port", str(grpc_port)]
    server = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "500"},
    )
    try:
        client = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()
            try:
                if client.is_server_ready():
                    break
            except InferenceServerException:
                pass
            assert time.monotonic() < deadline, "the gRPC service did not become ready"
            time.sleep(0.1)
        rows = [{**r, "member": bool(r["member"])} for r in ROWS]
        result = client.infer("loyalty", _inputs(rows))
        assert result.as_numpy("probabilities").shape == (3, 2)
        client.close()
        assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            _, stderr = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
    assert f"and gRPC on 127.0.0.1:{grpc_port}" in stderr


# uvicorn's thread ends with SystemExit(3) when the lifespan fails: that is the point here
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_grpc_port_taken_stops_the_server_from_starting(
    serve: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="did not start"), serve(grpc_port=port):
            pass
    assert f"gRPC could not bind 127.0.0.1:{port}" in capfd.readouterr().err
