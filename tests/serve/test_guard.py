"""Who may call the server: Host names, browsers' Origins, body types, the admin token, ids."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlcycle import Project
from mlcycle.serve._guard import Guard, Refusal, allowed_hosts

RECORD = {"income": 61.5, "city": "paris", "member": True}
PREDICT = {"records": [RECORD]}
JSON = {"content-type": "application/json"}


def _post(url: str, path: str = "/predict", **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("json", PREDICT)
    return httpx.post(f"{url}{path}", **kwargs)


def test_a_host_that_is_not_the_servers_name_is_refused_on_every_route(serve: Any) -> None:
    with serve() as (url, _):
        port = url.rsplit(":", 1)[1]
        for host in (f"localhost:{port}", "LOCALHOST", f"127.0.0.1:{port}", f"[::1]:{port}"):
            assert _post(url, headers={"host": host}).status_code == 200, host
        for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example", "[::2]"):
            refused = _post(url, headers={"host": host})
            assert refused.status_code == 421, host
            assert refused.json()["error"].startswith(f"Host {host!r} is not a name this server")
            assert "--allowed-host" in refused.json()["error"]
        # reads too: a rebound page could read the metrics and the model's metadata
        for path in ("/metrics", "/v2/models/loyalty", "/v2/health/ready", "/nowhere"):
            got = httpx.get(f"{url}{path}", headers={"host": "evil.example"})
            assert got.status_code == 421, path
        assert (
            _post(url, "/feedback", json={"labels": []}, headers={"host": "a.b"}).status_code == 421
        )
        metrics = httpx.get(f"{url}/metrics").text
        assert 'mlcycle_requests_total{code="421",route="predict"}' in metrics


def test_allowed_hosts_add_names_and_a_star_allows_any(serve: Any) -> None:
    names = allowed_hosts("0.0.0.0", ["Models.Example.com", "fd00::1"])
    assert names == ("localhost", "127.0.0.1", "[::1]", "models.example.com", "fd00::1")
    with serve(allowed_hosts=names) as (url, _):
        assert _post(url, headers={"host": "models.example.com:443"}).status_code == 200
        assert _post(url, headers={"host": "[fd00::1]:8080"}).status_code == 200
        assert _post(url, headers={"host": "other.example.com"}).status_code == 421
    with serve(allowed_hosts=("*",)) as (url, _):
        assert _post(url, headers={"host": "anything.example"}).status_code == 200
        assert _post(url, headers={"origin": "https://anything.example"}).status_code == 200


def test_a_browser_request_from_another_site_is_refused(serve: Any) -> None:
    with serve(allowed_hosts=allowed_hosts("127.0.0.1", ["models.example.com"])) as (url, _):
        for origin in ("http://localhost:3000", "https://models.example.com"):
            assert _post(url, headers={"origin": origin}).status_code == 200, origin
        for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example:80"):
            refused = _post(url, headers={"origin": origin})
            assert refused.status_code == 403, origin
            assert refused.json()["error"] == (
                f"Origin {origin!r} is not one of this server's names: "
                "cross-site requests from a browser are refused"
            )
        fed = _post(
            url, "/feedback", json={"labels": []}, headers={"origin": "http://evil.example"}
        )
        assert fed.status_code == 403
        # reads are not refused for an Origin: without CORS headers the page cannot read them
        assert httpx.get(f"{url}/v2", headers={"origin": "http://evil.example"}).status_code == 200


def test_only_json_bodies_are_taken_by_prediction_and_feedback_routes(serve: Any) -> None:
    body = b'{"records": [{"income": 61.5, "city": "paris", "member": true}]}'
    with serve(max_body_bytes=10_000) as (url, _):
        for ctype in (
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/octet-stream",  # without Inference-Header-Content-Length
            "application/xml",
        ):
            for path in ("/predict", "/v2/models/loyalty/infer", "/feedback"):
                refused = httpx.post(f"{url}{path}", content=body, headers={"content-type": ctype})
                assert refused.status_code == 415, (ctype, path, refused.text)
                assert refused.json()["error"].startswith(f"Content-Type {ctype!r} is not taken")
        # refused before the body is read: a large one is not a 413
        big = httpx.post(
            f"{url}/predict", content=b"x" * 50_000, headers={"content-type": "text/plain"}
        )
        assert big.status_code == 415
        for ctype in ("application/json", "Application/JSON; charset=utf-8", None):
            headers = {"content-type": ctype} if ctype else {}
            ok = httpx.post(f"{url}/predict", content=body, headers=headers)
            assert ok.status_code == 200, (ctype, ok.text)


def test_the_guard_names_the_allowed_hosts() -> None:
    guard = Guard(allowed_hosts("10.1.2.3"))
    guard.check({"host": "10.1.2.3:8080"}, post=True)
    guard.check({}, post=True)  # HTTP/1.0 without Host: no browser sends that
    with pytest.raises(Refusal) as refused:
        guard.check({"host": "10.1.2.4"}, post=False)
    assert refused.value.status == 421
    assert "(10.1.2.3, 127.0.0.1, [::1], localhost)" in refused.value.message


def test_admin_token_needs_the_bearer_scheme(serve: Any) -> None:
    with serve(admin_token="s3cret") as (url, _):
        for given in ("s3cret", "Basic s3cret", "Bearers3cret", "Bearer", "Bearer nope"):
            got = _post(url, "/admin/reload", json=None, headers={"authorization": given})
            assert got.status_code == 401, given
            assert got.json()["error"] == "admin routes need 'Authorization: Bearer <token>'"
        for given in ("Bearer s3cret", "bearer s3cret", "Bearer  s3cret"):
            got = _post(url, "/admin/reload", json=None, headers={"authorization": given})
            assert got.status_code == 200, given


def test_a_reload_onto_a_corrupt_version_is_a_409_and_serving_goes_on(
    serve: Any, corrupt_copy: Path
) -> None:
    root = corrupt_copy
    with serve(project=root, admin_token="s3cret") as (url, _):
        with Project.open(root) as project:
            project.store.registry.set_alias("loyalty", 2, "champion", actor="test", reason="bad")
        got = _post(url, "/admin/reload", json=None, headers={"authorization": "Bearer s3cret"})
        assert got.status_code == 409
        message = got.json()["error"]
        assert message.startswith("could not reload loyalty@champion: artifact ")
        assert "is corrupt: expected sha256" in message
        assert message.endswith("still serving version 1")
        assert _post(url).json()["version"] == 1


def test_request_ids_are_unguessable_and_client_ids_are_checked(serve: Any) -> None:
    with serve() as (url, _), httpx.Client(base_url=url) as client:
        ids = [client.post("/predict", json=PREDICT).json()["request_id"] for _ in range(50)]
        v2 = {
            "inputs": [
                {"name": "income", "shape": [1], "datatype": "FP32", "data": [61.5]},
                {"name": "city", "shape": [1], "datatype": "BYTES", "data": ["paris"]},
                {"name": "member", "shape": [1], "datatype": "BOOL", "data": [True]},
            ]
        }
        ids += [client.post("/v2/models/loyalty/infer", json=v2).json()["id"] for _ in range(50)]
        assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
        # no shared prefix and no counter: each id is 128 fresh random bits
        assert len({i[:8] for i in ids}) == len(ids) and len({i[-8:] for i in ids}) == len(ids)

        assert (
            client.post("/predict", json={**PREDICT, "id": "req-7"}).json()["request_id"] == "req-7"
        )
        empty = client.post("/predict", json={**PREDICT, "id": ""}).json()["request_id"]
        assert re.fullmatch("[0-9a-f]{32}", empty)  # an empty id is none: a fresh one
        named = client.post("/predict", json=PREDICT, headers={"x-request-id": "hdr-1"})
        assert named.json()["request_id"] == "hdr-1"
        assert (
            client.post("/v2/models/loyalty/infer", json={**v2, "id": "v2-1"}).json()["id"]
            == "v2-1"
        )
        bad = [
            ("/predict", {**PREDICT, "id": 17}, {}, "'id': expected a string, got 17"),
            ("/predict", {**PREDICT, "id": "x" * 129}, {}, "'id': 129 characters, at most 128"),
            ("/predict", {**PREDICT, "id": "a\nb"}, {}, "other than printable ASCII"),
            ("/predict", PREDICT, {"x-request-id": "y" * 200}, "X-Request-Id: 200 characters"),
            ("/v2/models/loyalty/infer", {**v2, "id": {"a": 1}}, {}, "'id': expected a string"),
            ("/v2/models/loyalty/infer", {**v2, "id": ["x"]}, {}, "'id': expected a string"),
            ("/v2/models/loyalty/infer", {**v2, "id": "\u00e9t\u00e9"}, {}, "printable ASCII"),
        ]
        for path, body, headers, message in bad:
            got = client.post(path, json=body, headers=headers)
            assert got.status_code == 400, (body, got.text)
            assert message in got.json()["error"], got.text
