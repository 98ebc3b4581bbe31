"""Every registered trigger runs the conformance suite; a new one is one class."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from mlcycle import Project
from mlcycle.errors import SpecError
from mlcycle.loop import LoopState, Trigger, TriggerContext, tick
from mlcycle.plugins import TRIGGERS
from mlcycle.registry import register
from mlcycle.spec import parse_spec
from mlcycle.train import train
from tests.conformance.triggers import NOW, TriggerConformance, monitored, performance


class TestDrift(TriggerConformance):
    name = "drift"
    off = False

    def bad(self, project: Project) -> TriggerContext:
        return self.context(project, result=monitored(drift=True))

    def good(self, project: Project) -> TriggerContext:
        return self.context(project, result=monitored(drift=False))


class TestPerformanceDrop(TriggerConformance):
    name = "performance_drop"
    off = False

    def bad(self, project: Project) -> TriggerContext:
        return self.context(project, result=monitored(performance=performance(alert=True)))

    def good(self, project: Project) -> TriggerContext:
        return self.context(project, result=monitored(performance=performance(alert=False)))


class TestOODShare(TriggerConformance):
    name = "ood_share"
    setting = 0.1

    def bad(self, project: Project) -> TriggerContext:
        return self.context(project, result=monitored(ood={"share": 0.3, "alert": True}))

    def good(self, project: Project) -> TriggerContext:
        return self.context(project, result=monitored(ood={"share": 0.01, "alert": False}))


class TestAttributionDrift(TriggerConformance):
    name = "attribution_drift"
    off = False

    def bad(self, project: Project) -> TriggerContext:
        moved = {"ndcg": 0.71, "min_ndcg": 0.9, "alert": True}
        return self.context(project, result=monitored(attribution=moved))

    def good(self, project: Project) -> TriggerContext:
        alike = {"ndcg": 0.99, "min_ndcg": 0.9, "alert": False}
        return self.context(project, result=monitored(attribution=alike))


class TestInterval(TriggerConformance):
    name = "interval"
    setting = "1d"

    def bad(self, project: Project) -> TriggerContext:
        state = LoopState(last_retrain=(NOW - timedelta(days=2)).isoformat())
        return self.context(project, state=state)

    def good(self, project: Project) -> TriggerContext:
        state = LoopState(last_retrain=(NOW - timedelta(hours=1)).isoformat())
        return self.context(project, state=state)


class TestNewLabels(TriggerConformance):
    name = "new_labels"
    setting = 100

    def bad(self, project: Project) -> TriggerContext:
        return self.context(project, labels=150)

    def good(self, project: Project) -> TriggerContext:
        return self.context(project, labels=50)


class TestKeepImproving(TriggerConformance):
    name = "keep_improving"
    setting = 0.5

    def bad(self, project: Project) -> TriggerContext:
        state = LoopState(improving=True, promoted_last=True)
        return self.context(project, state=state, labels=300, trained=200)

    def good(self, project: Project) -> TriggerContext:
        state = LoopState(improving=False)
        return self.context(project, state=state, labels=300, trained=200)


def test_every_built_in_runs_the_suite() -> None:
    covered = {cls.name for cls in TriggerConformance.__subclasses__()}
    assert set(TRIGGERS.names()) <= covered


class BusyWindow(Trigger):
    """A toy trigger, as a user would write it in one file: the window holds many rows."""

    kind = "busy"

    def fire(self, context: TriggerContext) -> str | None:
        rows = context.result.window.get("rows", 0) if context.result is not None else 0
        return f"busy window: {rows} rows" if rows >= self.setting else None


@pytest.fixture
def busy_window() -> Iterator[type[BusyWindow]]:
    TRIGGERS.register("busy_window")(BusyWindow)
    yield BusyWindow
    TRIGGERS.unregister("busy_window")


@pytest.mark.usefixtures("busy_window")
class TestBusyWindow(TriggerConformance):
    """A new trigger: its class and one registration line, and it passes the suite."""

    name = "busy_window"
    setting = 300

    def bad(self, project: Project) -> TriggerContext:
        return self.context(project, result=monitored())

    def good(self, project: Project) -> TriggerContext:
        return self.context(project)

    def test_the_loop_runs_it(self, tmp_path: Path) -> None:
        """Turned on in mlcycle.yaml, it fires in a real tick and its reason is recorded."""
        root = tmp_path / "p"
        Project.init(root, name="p").close()
        spec = {"train": {"max_epochs": 2}, "loop": {"triggers": {"busy_window": 0}}}
        (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
        with Project.open(root) as project:
            outcome = train(project, data="sklearn:iris")
            register(project, outcome.run_id, "iris", alias="champion")
            done = tick(project, "iris")
        assert done.state.phase == "triggered" and done.state.kinds == ["busy"]
        assert done.state.triggers == ["busy window: 0 rows"]


def test_an_unregistered_trigger_is_refused_with_the_registered_names() -> None:
    with pytest.raises(
        SpecError, match="unknown trigger 'busy_window'; registered: attribution_drift, drift"
    ):
        parse_spec({"loop": {"triggers": {"busy_window": 300}}})
