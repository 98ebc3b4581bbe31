"""The triggers mlcycle ships, one per built-in key of ``loop.triggers``.

``drift`` (the dataset drifted), ``performance_drop`` (realised performance
fell), ``ood_share`` (too many out-of-distribution inputs),
``attribution_drift`` (the model leans on other inputs), ``interval`` (a
schedule), ``new_labels`` (enough labelled rows) and ``keep_improving`` (after
a promotion, retrain while labelled rows the champion never saw pile up).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mlcycle.loop._base import Trigger, TriggerContext
from mlcycle.monitor import parse_since
from mlcycle.monitor._performance import _verdict

if TYPE_CHECKING:
    from mlcycle.monitor import PerformanceResult

__all__ = [
    "AttributionDriftTrigger",
    "DriftTrigger",
    "IntervalTrigger",
    "KeepImprovingTrigger",
    "NewLabelsTrigger",
    "OODShareTrigger",
    "PerformanceDropTrigger",
]


class DriftTrigger(Trigger):
    """The monitored window drifted (``monitor``'s dataset verdict)."""

    kind = "drift"
    changes_concept = True

    def fire(self, context: TriggerContext) -> str | None:
        result = context.result
        if result is None or not result.features.drift:
            return None
        drifted = result.features.drifted_columns
        return f"dataset drift in {len(drifted)} inputs ({', '.join(drifted[:5])})"


class PerformanceDropTrigger(Trigger):
    """Realised performance dropped, in the window or in the newest labelled rows.

    A version the loop promoted is held to its score on the gate's held-out
    rows (hundreds of fresh rows) rather than to its own test split, which
    for a model trained on a few hundred fresh rows is too small to judge by.
    """

    kind = "performance"
    changes_concept = True

    def fire(self, context: TriggerContext) -> str | None:
        if context.result is None:
            return None
        dropped = self.dropped(context, context.result.performance, "")
        recent = context.result.recent_performance
        if dropped is None and recent is not None:
            dropped = self.dropped(context, recent, f" in the newest {recent.n} labelled rows")
        return dropped

    @staticmethod
    def dropped(
        context: TriggerContext, performance: PerformanceResult | None, where: str
    ) -> str | None:
        """Why the champion's realised ``performance`` dropped, or None."""
        if performance is None:
            return None
        ref = context.state.reference
        if (
            ref
            and ref.get("version") == context.champion.version
            and ref.get("metric") == performance.metric
        ):
            alert, reason = _verdict(
                performance.metric,
                performance.value,
                performance.low,
                performance.high,
                float(ref["value"]),
                performance.n,
                context.project.spec.monitor.performance,
            )
            if alert:
                return (
                    f"performance drop{where}: {reason} (the reference: its score on "
                    f"{ref['rows']} rows the gate held out)"
                )
            return None
        return f"performance drop{where}: {performance.reason}" if performance.alert else None


class OODShareTrigger(Trigger):
    """At least ``setting`` (a share) of the window's inputs are out of distribution."""

    kind = "ood"
    changes_concept = True

    def fire(self, context: TriggerContext) -> str | None:
        ood = context.result.ood if context.result is not None else None
        if ood is None or ood["alert"] is None:  # None: too few rows for a verdict
            return None
        if ood["share"] < float(self.setting):
            return None
        return f"{ood['share']:.1%} out-of-distribution inputs"


class AttributionDriftTrigger(Trigger):
    """The inputs' attribution ranking moved (``monitor.attribution``'s nDCG alert)."""

    kind = "attribution"
    changes_concept = True

    def fire(self, context: TriggerContext) -> str | None:
        found = context.result.attribution if context.result is not None else None
        if not found or not found.get("alert"):  # None: off, skipped or too few rows
            return None
        return f"attribution drift: nDCG {found['ndcg']:.3f} below {found['min_ndcg']}"


class IntervalTrigger(Trigger):
    """The last retraining (or the champion's registration) is older than ``setting``."""

    kind = "schedule"

    def fire(self, context: TriggerContext) -> str | None:
        last = context.state.last_retrain
        since = datetime.fromisoformat(last) if last else context.champion.created_at
        if context.now - since < parse_since(str(self.setting)):
            return None
        return f"schedule: last retraining {since:%Y-%m-%d %H:%M} is older than {self.setting}"


class NewLabelsTrigger(Trigger):
    """At least ``setting`` labelled rows arrived since the last retraining."""

    kind = "new_labels"

    def fire(self, context: TriggerContext) -> str | None:
        new = context.new_labels
        if new < int(self.setting):
            return None
        return f"{new} new labelled rows (trigger at {self.setting})"


class KeepImprovingTrigger(Trigger):
    """After a promotion, retrain once the unseen labelled rows reach ``setting`` x trained rows.

    After a promotion a few new labels (``loop.min_labels``) are enough to go
    on; after a near miss as many again as the champion trained on. The loop
    stops improving after two challengers in a row fail to beat the champion.
    """

    kind = "improve"

    def fire(self, context: TriggerContext) -> str | None:
        state = context.state
        trained = context.trained_rows
        if not state.improving or not trained:
            return None
        improve = float(self.setting)
        new = context.new_labels
        unseen = new
        if state.data_since and state.data_since != state.last_retrain:
            unseen = context.labelled_since(datetime.fromisoformat(state.data_since))
        wait = context.spec.min_labels if state.promoted_last else improve * trained
        if unseen < improve * trained or new < wait:
            return None
        return (
            f"keep improving: {unseen} labelled rows {context.champion.ref} never trained "
            f"on, at least {improve:g}x the {trained} rows it trained on"
        )
