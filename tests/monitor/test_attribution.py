"""Attribution drift: a window where the model leans on other inputs alerts; a like one does not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle import Project
from mlcycle.loop._base import TriggerContext
from mlcycle.loop._state import LoopState
from mlcycle.loop._triggers import AttributionDriftTrigger
from mlcycle.monitor import monitor
from mlcycle.monitor._attribution import ndcg
from mlcycle.train import train
from mlcycle.workflow import register

pytestmark = pytest.mark.slow


def _rows(n: int, seed: int, *, hold_a: bool = False) -> pd.DataFrame:
    """y leans on a most, b less, c not at all; ``hold_a``: a stuck at its middle."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    y = np.where(2.0 * a + 0.7 * b > 0, "yes", "no")
    if hold_a:
        a = np.full(n, 0.0)
    return pd.DataFrame({"a": a, "b": b, "c": c, "y": y})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("attribution")
    _rows(1200, 0).to_csv(root / "train.csv", index=False)
    _rows(300, 1).drop(columns="y").to_csv(root / "alike.csv", index=False)
    _rows(300, 2, hold_a=True).drop(columns="y").to_csv(root / "held.csv", index=False)
    with Project.init(root, name="attribution") as project:
        project.datasets.add(str(root / "train.csv"), name="abc", target="y")
        run = train(project, data="abc", overrides={"max_epochs": 10}, quiet=True)
        register(project, run.run_id, "abc")
        yield project


def test_a_window_like_the_reference_keeps_the_ranking(project: Project) -> None:
    result = monitor(project, "abc", current=Path(project.root) / "alike.csv")
    found = result.attribution
    assert found is not None and found["alert"] is False, found
    assert found["ndcg"] > 0.97
    ranked = sorted(found["reference"], key=lambda n: -found["reference"][n])
    assert ranked == ["a", "b", "c"]  # the truth the data was made with
    assert not [a for a in result.alerts if a.kind == "attribution_drift"]


def test_a_window_where_the_model_leans_on_another_input_alerts(
    project: Project, tmp_path: Path
) -> None:
    html = tmp_path / "report.html"
    result = monitor(project, "abc", current=Path(project.root) / "held.csv", html=html)
    found = result.attribution
    assert found is not None and found["alert"] is True, found
    assert found["ndcg"] < 0.9
    assert found["current"]["a"] < found["current"]["b"]
    alert = next(a for a in result.alerts if a.kind == "attribution_drift")
    assert "now led by b" in alert.message
    assert "Attribution drift" in html.read_text()
    context = TriggerContext(
        project,
        project.store.registry.get("abc"),
        LoopState(),
        result,
        datetime.now(UTC),
        project.spec.loop,
    )
    fired = AttributionDriftTrigger(True).fire(context)
    assert fired is not None and "nDCG" in fired


def test_attribution_drift_can_be_turned_off(project: Project) -> None:
    spec = project.spec.monitor.model_copy(
        update={
            "attribution": project.spec.monitor.attribution.model_copy(update={"enabled": False})
        }
    )
    result = monitor(project, "abc", current=Path(project.root) / "held.csv", spec=spec)
    assert result.attribution is None


def test_ndcg_weighs_a_swap_by_how_much_the_inputs_mattered() -> None:
    reference = {"a": 1.0, "b": 0.98, "c": 0.1}
    assert ndcg(reference, {"a": 0.5, "b": 0.6, "c": 0.0}) > 0.99  # near-equals swapped
    assert ndcg(reference, {"a": 0.1, "b": 0.2, "c": 0.9}) < 0.8  # the least rose to the top
    assert ndcg(reference, reference) == 1.0
