"""``mlcycle doctor`` says what the project resolves to here, and which part does not answer."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlcycle import Project
from mlcycle.cli import app
from mlcycle.workflow import diagnose
from tests._s3 import CREDENTIALS, s3_server

runner = CliRunner()


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MLCYCLE_STORE_URL", "MLCYCLE_ARTIFACTS_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    Project.init(tmp_path / "p", name="p").close()
    return tmp_path / "p"


def _spec(root: Path, **sections: object) -> None:
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(sections))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once the socket is: nothing listens there


def test_a_laptop_project_is_all_local_and_fine(root: Path) -> None:
    done = runner.invoke(app, ["--project", str(root), "doctor", "--json"])
    assert done.exit_code == 0, done.output
    found = {f["part"]: f for f in json.loads(done.output)}
    assert found["metadata store"]["source"] == "default"
    assert found["metadata store"]["target"].startswith("sqlite:///")
    assert "revision" in found["metadata store"]["detail"]
    assert found["artifact store"]["detail"] == "writable and readable"
    assert found["executor"]["target"] == "local"
    assert not list((root / ".mlcycle" / "artifacts" / "tmp").iterdir())  # the probe is gone


def test_the_environment_wins_and_a_dead_server_is_named(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    monkeypatch.setenv(
        "MLCYCLE_STORE_URL", f"postgresql+psycopg://postgres:secret@127.0.0.1:{port}/none"
    )
    findings = {f.part: f for f in diagnose(root)}
    store = findings["metadata store"]
    assert store.source == "MLCYCLE_STORE_URL" and not store.ok
    assert "secret" not in store.target and str(port) in store.target
    assert "cannot connect" in store.detail
    done = runner.invoke(app, ["--project", str(root), "doctor"])
    assert done.exit_code == 1
    assert "FAIL metadata store" in done.output


def test_postgres_and_s3_are_checked(
    root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with s3_server() as endpoint:
        for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(name, value)
        _spec(
            root,
            store={"url": pg_url},
            artifacts={"uri": "s3://doctor-bucket/team"},
        )
        findings = {f.part: f for f in diagnose(root)}
    assert findings["metadata store"].ok and findings["metadata store"].source.endswith("store.url")
    assert findings["artifact store"].ok, findings["artifact store"].detail
    assert findings["artifact store"].target.startswith("s3://doctor-bucket/team")


def test_s3_without_credentials_says_what_to_set(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with s3_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        for name in (*CREDENTIALS, "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(root / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(root / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        _spec(root, artifacts={"uri": "s3://nowhere-bucket/x"})
        artifacts = {f.part: f for f in diagnose(root)}["artifact store"]
    assert not artifacts.ok
    assert "NoCredentialsError" in artifacts.detail and "AWS_ACCESS_KEY_ID" in artifacts.detail


def test_no_project_is_one_finding() -> None:
    findings = diagnose("/")
    assert len(findings) == 1 and not findings[0].ok and "mlcycle.yaml" in findings[0].detail


def test_a_ray_address_that_does_not_answer_is_named(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _spec(root, train={"executor": "ray"})
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    ray = {f.part: f for f in diagnose(root)}["executor"]
    assert not ray.ok and ray.source == "RAY_ADDRESS" and "does not answer" in ray.detail
    monkeypatch.delenv("RAY_ADDRESS")
    local = {f.part: f for f in diagnose(root)}["executor"]
    assert local.ok and "local Ray instance" in local.detail
