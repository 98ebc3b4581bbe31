"""A server whose version is deleted from the registry stops answering with it, and says so.

Each test serves a copy of the shared project (loyalty@1 champion, loyalty@2
challenger, different weights), so deleting versions there touches no other test.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from mlcycle import Project, load
from mlcycle.registry import register

ROW = {"income": 61.5, "city": "paris", "member": True}
T = TypeVar("T")


@pytest.fixture
def project_copy(served_project: Path, tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(served_project, root, ignore=shutil.ignore_patterns("log"))
    return root


def _predict(url: str) -> httpx.Response:
    return httpx.post(f"{url}/predict", json={"records": [ROW]}, timeout=30)


def _until(check: Callable[[], T | None], what: str) -> T:
    """Poll the server until ``check`` sees the change (it polls the registry every 50 ms)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = check()
        if seen is not None:
            return seen
        time.sleep(0.05)
    pytest.fail(f"the server never {what}")


def _answer(url: str, status: int, version: int | None = None) -> dict[str, Any] | None:
    reply = _predict(url)
    if reply.status_code != status:
        return None
    body: dict[str, Any] = reply.json()
    return body if version is None or body.get("version") == version else None


def _delete_v2(root: Path) -> str:
    """Move @challenger off version 2 and delete it; the run it was registered from."""
    with Project.open(root) as project:
        registry = project.store.registry
        run_id = registry.get("loyalty@2").run_id
        registry.set_alias("loyalty", 1, "challenger", actor="test", reason="make way")
        registry.delete_version("loyalty", 2, actor="test", reason="bad weights")
    assert run_id is not None
    return run_id


def _probabilities(answer: dict[str, Any]) -> list[float]:
    return [float(p) for p in answer["probabilities"][0].values()]


def _messages(caplog: pytest.LogCaptureFixture, part: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if part in r.getMessage()]


def test_a_server_on_a_deleted_version_answers_404_and_never_takes_its_number_back(
    serve: Any, project_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlcycle.serve")
    with serve(project=project_copy, ref="loyalty@2", poll_s=0.05, admin_token="t") as (url, _):
        assert _answer(url, 200, version=2) is not None
        run_id = _delete_v2(project_copy)

        gone = _until(lambda: _answer(url, 404), "stopped answering with loyalty@2")
        why = "loyalty@2 is not served any more: model 'loyalty' has no version 2"
        assert gone == {"error": why}
        infer = httpx.post(f"{url}/v2/models/loyalty/versions/2/infer", json={"inputs": []})
        assert (infer.status_code, infer.json()) == (404, {"error": why})
        assert httpx.get(f"{url}/v2/health/ready").status_code == 503
        assert _messages(caplog, "no longer answering") == [
            "loyalty@2: model 'loyalty' has no version 2; no longer answering with loyalty@2"
        ]

        # The same weights registered again are a new number; loyalty@2 stays deleted.
        with Project.open(project_copy) as project:
            assert register(project, run_id, "loyalty").version == 3
        reload = httpx.post(f"{url}/admin/reload", headers={"authorization": "Bearer t"})
        assert reload.json() == {"swapped": False, "version": None}
        assert _answer(url, 404) == {"error": why}
        assert len(_messages(caplog, "no longer answering")) == 1  # said once, not every poll


def test_a_server_on_the_newest_version_falls_back_when_it_is_deleted(
    serve: Any, project_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlcycle.serve")
    with serve(project=project_copy, ref="loyalty", poll_s=0.05) as (url, _):
        before = _answer(url, 200, version=2)
        assert before is not None
        run_id = _delete_v2(project_copy)

        fallback = _until(lambda: _answer(url, 200, version=1), "fell back to loyalty@1")
        expected = load("loyalty@1", project=project_copy).predict_proba([ROW])[0]
        assert _probabilities(fallback) == pytest.approx(expected, abs=1e-6)
        assert _messages(caplog, "was deleted") == [
            "loyalty@2 was deleted from the registry; now serving loyalty@1 for loyalty"
        ]

        with Project.open(project_copy) as project:
            assert register(project, run_id, "loyalty").version == 3
        newest = _until(lambda: _answer(url, 200, version=3), "took loyalty@3")
        # loyalty@2's weights again, under their new number, not loyalty@1's
        assert _probabilities(newest) == pytest.approx(_probabilities(before))
        assert _probabilities(newest) != pytest.approx(_probabilities(fallback), abs=1e-4)
