"""``POST /feedback``: labels the model could have answered, behind an optional token."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlcycle.predictions import PredictionLog
from mlcycle.serve._feedback import MAX_ID_CHARS, MAX_LABELS, LabelRule, check_labels
from tests._servers import wait_ready

MLCYCLE = str(Path(sys.executable).with_name("mlcycle"))


@pytest.mark.parametrize(
    ("label", "shown"),
    [("banana", '"banana"'), (None, "null"), ({"x": [1]}, '{"x":[1]}'), ([1], "[1]"), (1, "1")],
)
def test_a_label_the_model_cannot_answer_is_422_naming_it(
    serve: Any, served_project: Path, label: Any, shown: str
) -> None:
    good = {"request_id": "fb-ok", "label": "yes"}
    with serve() as (url, _):
        answer = httpx.post(
            f"{url}/feedback",
            json={"labels": [good, {"request_id": f"fb-bad-{shown}", "label": label}]},
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == (
        f"labels[1] (request_id 'fb-bad-{shown}'): label {shown} is not a label of 'loyalty'; "
        "expected one of 'no', 'yes'"
    )
    log = PredictionLog(served_project / ".mlcycle" / "log")
    feedback = log.read_feedback()
    log.close()
    ids = feedback.column("request_id").to_pylist() if feedback.num_rows else []
    assert f"fb-bad-{shown}" not in ids  # nothing of a refused request is recorded


def test_feedback_bounds_the_labels_and_the_request_ids(serve: Any) -> None:
    with serve() as (url, _):
        many = [{"request_id": f"r{i}", "label": "no"} for i in range(MAX_LABELS + 1)]
        answer = httpx.post(f"{url}/feedback", json={"labels": many})
        assert answer.status_code == 422
        assert (
            answer.json()["error"]
            == f"{MAX_LABELS + 1} labels in one request: at most {MAX_LABELS}"
        )
        for request_id, got in (
            ("x" * (MAX_ID_CHARS + 1), "257 characters"),
            ("", "0 characters"),
            (7, "7"),
        ):
            answer = httpx.post(
                f"{url}/feedback", json={"labels": [{"request_id": request_id, "label": "no"}]}
            )
            assert answer.status_code == 422
            assert answer.json()["error"] == (
                f"labels[0]: request_id must be a string of 1 to {MAX_ID_CHARS} characters, got {got}"
            )
        fed = httpx.post(
            f"{url}/feedback", json={"labels": [{"request_id": "x" * MAX_ID_CHARS, "label": "no"}]}
        )
        assert fed.json()["accepted"] == 1


def test_labels_match_classes_by_value_and_regression_takes_finite_numbers() -> None:
    digits = LabelRule("digits", "multiclass", ["0", "1", "10"])
    assert [digits.label(v) for v in (1, "1", 1.0, "1.0", 10, 1e1, "10")] == ["1"] * 4 + ["10"] * 3
    assert [digits.label(v) for v in (2, "2", 1.5, True, None, [1], {"x": 1})] == [None] * 7
    flags = LabelRule("flags", "binary", ["false", "true"])
    assert [flags.label(v) for v in (True, False, "true", 1)] == ["true", "false", "true", None]
    price = LabelRule("price", "regression", None)
    assert [price.label(v) for v in (2.5, 3, "4.25", -1e300)] == ["2.5", "3.0", "4.25", "-1e+300"]
    assert [price.label(v) for v in ("nan", "inf", 10**400, True, None, "x", [1])] == [None] * 7
    with pytest.raises(ValueError, match=r"labels\[0\] \(request_id 'r1'\): label nan"):
        check_labels([{"request_id": "r1", "label": float("nan")}], price)
    with pytest.raises(ValueError, match="expected a finite number \\('price' is a regressor\\)"):
        check_labels([{"request_id": "r1", "label": "cheap"}], price)
    many = LabelRule("m", "multiclass", [str(i) for i in range(30)])
    assert many.allowed().endswith("'19', … (30 classes)")


def test_the_feedback_token_is_needed_when_set(serve: Any) -> None:
    labels = {"labels": [{"request_id": "tok-1", "label": "yes"}]}
    with serve(feedback_token="s3cret") as (url, _):
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
            answer = httpx.post(f"{url}/feedback", json=labels, headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in answer.json()["error"]
        fed = httpx.post(f"{url}/feedback", json=labels, headers={"authorization": "Bearer s3cret"})
        assert fed.json()["accepted"] == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # a server process each: 7-10 s on a busy machine
@pytest.mark.parametrize("source", ["file", "env"])
def test_mlcycle_serve_takes_the_feedback_token_from_a_file_or_the_env(
    served_project: Path, tmp_path: Path, source: str
) -> None:
    port = _free_port()
    args = [MLCYCLE, "serve", "loyalty@champion", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "MLCYCLE_FEEDBACK_TOKEN"}
    if source == "file":
        (tmp_path / "token").write_text("s3cret\n")
        args += ["--feedback-token-file", str(tmp_path / "token")]
    else:
        env["MLCYCLE_FEEDBACK_TOKEN"] = "s3cret"
    server = subprocess.Popen(
        args, cwd=served_project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(server, url, timeout=60)
        labels = {"labels": [{"request_id": f"cli-{source}", "label": "no"}]}
        assert httpx.post(f"{url}/feedback", json=labels).status_code == 401
        fed = httpx.post(f"{url}/feedback", json=labels, headers={"authorization": "Bearer s3cret"})
        assert fed.json()["accepted"] == 1
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        assert server.stderr is not None
        server.stderr.close()


def test_a_missing_or_empty_token_file_is_one_line(served_project: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    for path, message in (
        (tmp_path / "absent", f"error: --feedback-token-file {tmp_path / 'absent'}: no such file"),
        (tmp_path / "empty", f"error: --feedback-token-file {tmp_path / 'empty'} is empty"),
    ):
        done = subprocess.run(
            [MLCYCLE, "serve", "loyalty@champion", "--feedback-token-file", str(path)],
            cwd=served_project,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "500"},  # one line, however long the path
        )
        assert done.returncode == 1
        assert done.stderr.strip() == message
