"""The conformance suite of loop triggers (:class:`mlcycle.loop.Trigger`).

Subclass :class:`TriggerConformance`, name the registered trigger, give an
``on`` setting, and say what a known-bad and a known-good tick look like
(:meth:`bad` and :meth:`good`, built with :func:`context`).

A context holds the real records a tick hands its triggers (the loop's state,
a monitoring result made of real drift reports, a version record); only what
the prediction log would count (labelled rows) is given as a number here, so
that a trigger's decision is checked without serving a model. The loop's own
tests drive the built-ins through a served model end to end.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pytest

from mlcycle import Project
from mlcycle.loop import LoopState, Trigger, TriggerContext
from mlcycle.monitor import MonitorResult, PerformanceResult, drift_report
from mlcycle.plugins import TRIGGERS
from mlcycle.spec import LoopSpec, parse_spec
from mlcycle.store import ModelVersionRecord

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


class Context(TriggerContext):
    """A tick's context whose prediction log holds ``labels`` labelled rows since any time."""

    labels: int = 0
    trained: int = 0

    def labelled_since(self, since: datetime | None) -> int:
        return self.labels

    @cached_property
    def trained_rows(self) -> int:
        return self.trained


def monitored(
    *,
    drift: bool = False,
    performance: PerformanceResult | None = None,
    ood: Any = None,
    attribution: dict[str, Any] | None = None,
) -> MonitorResult:
    """A monitoring result whose input drift report is real (drifted or not)."""
    rng = np.random.default_rng(0)
    reference = {"x": rng.normal(size=400), "z": rng.normal(size=400)}
    shift = 2.0 if drift else 0.0
    current = {"x": rng.normal(shift, size=400), "z": rng.normal(shift, size=400)}
    features = drift_report(reference, current)
    assert features.drift is drift
    return MonitorResult(
        model="m",
        features=features,
        prediction=None,
        target=None,
        performance=performance,
        estimated=None,
        fairness={},
        ood=ood,
        timeline=[],
        alerts=[],
        report={"window": {"rows": 400}},
        attribution=attribution,
    )


def performance(alert: bool) -> PerformanceResult:
    value = 0.7 if alert else 0.9
    return PerformanceResult(
        metric="accuracy",
        value=value,
        low=value - 0.03,
        high=value + 0.03,
        reference=0.9,
        drop=0.9 - value,
        n=400,
        alert=alert,
        reason="accuracy 0.700 is 0.200 below the reference 0.900" if alert else None,
        higher_is_better=True,
        max_drop=0.05,
        confidence=0.95,
    )


def champion() -> ModelVersionRecord:
    return ModelVersionRecord(
        id=1,
        name="m",
        version=1,
        run_id=None,
        task="binary",
        metrics={},
        lineage={"dataset": "d@1"},
        signature={},
        description=None,
        files={},
        aliases=("champion",),
        created_at=NOW - timedelta(days=30),
        created_by="test",
    )


class TriggerConformance:
    """What every trigger must do: fire on a known-bad tick, stay silent on a good one,
    and round-trip through the spec."""

    name: ClassVar[str]
    setting: ClassVar[Any] = True  # a setting that turns it on
    off: ClassVar[Any] = None  # the setting that turns it off

    @pytest.fixture
    def project(self, tmp_path: Any) -> Any:
        with Project.init(tmp_path / "p", name="p") as project:
            yield project

    def context(
        self,
        project: Project,
        *,
        result: MonitorResult | None = None,
        state: LoopState | None = None,
        labels: int = 0,
        trained: int = 0,
    ) -> Context:
        spec = parse_spec({"loop": {"triggers": {self.name: self.setting}}}).loop
        context = Context(project, champion(), state or LoopState(), result, NOW, spec)
        context.labels, context.trained = labels, trained
        return context

    def bad(self, project: Project) -> TriggerContext:
        raise NotImplementedError

    def good(self, project: Project) -> TriggerContext:
        raise NotImplementedError

    def make(self) -> Trigger:
        return TRIGGERS.get(self.name)(self.setting)

    def test_is_registered_under_its_name(self) -> None:
        trigger = self.make()
        assert isinstance(trigger, Trigger) and self.name in TRIGGERS.names()
        assert trigger.kind and isinstance(trigger.changes_concept, bool)

    def test_fires_on_a_known_bad_tick(self, project: Project) -> None:
        reason = self.make().fire(self.bad(project))
        assert isinstance(reason, str) and reason and "\n" not in reason

    def test_is_silent_on_a_good_tick(self, project: Project) -> None:
        assert self.make().fire(self.good(project)) is None

    def test_spec_round_trip(self) -> None:
        spec = parse_spec({"loop": {"triggers": {self.name: self.setting}}})
        assert spec.loop.triggers.settings()[self.name] == self.setting
        again = parse_spec(spec.model_dump(mode="json"))
        assert again == spec and again.loop.triggers.setting(self.name) == self.setting
        off = spec.with_overrides({f"loop.triggers.{self.name}": self.off})
        assert self.name not in off.loop.triggers.settings()
        assert LoopSpec.model_validate(spec.loop.model_dump()).triggers == spec.loop.triggers
