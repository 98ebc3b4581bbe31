"""The gate for a challenger trained by hand: ``mlcycle gate NAME@champion NAME@VERSION``.

The same :func:`~mlcycle.loop.gate` the loop runs, on rows neither model
trained on: with ``data``, that dataset version's test split when one of the
two models was trained on it (its other rows may have been seen), otherwise
all of its rows; without ``data``, the test split of the dataset both were
trained on. Two models trained on different datasets need ``data``: the
test rows of one may be training rows of the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlcycle.errors import SpecError
from mlcycle.loop._gate import GateVerdict, gate
from mlcycle.registry import load

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.project import Project
    from mlcycle.spec import GateSpec

__all__ = ["JudgedPair", "audited", "judge_versions"]


@dataclass(frozen=True)
class JudgedPair:
    """A gate verdict and the rows it was reached on."""

    champion: str
    challenger: str
    holdout: str  # which rows, in words: "cancer@2 (test split, 114 rows)"
    verdict: GateVerdict


def _holdout(
    project: Project, data: str | None, trained_on: tuple[str, str]
) -> tuple[pa.Table, str]:
    if data is None:
        if trained_on[0] != trained_on[1]:
            raise SpecError(
                f"the champion was trained on {trained_on[0]} and the challenger on "
                f"{trained_on[1]}: name rows neither saw (data=DATASET@VERSION)"
            )
        data = trained_on[0]
    version = project.datasets.get(data)
    if version.ref in trained_on:
        table = project.datasets.load_split(version)["test"]
        return table, f"{version.ref} (test split, {table.num_rows} rows)"
    table = project.datasets.load(version)
    return table, f"{version.ref} (all {table.num_rows} rows)"


def judge_versions(
    project: Project, champion: str, challenger: str, *, data: str | None = None, seed: int = 0
) -> JudgedPair:
    """Gate ``challenger`` against ``champion`` with the project's ``loop.gate`` policy.

    Raises:
        SpecError: no rows both models are unseen on can be named (see the module doc).
        NotFoundError: a model version or the dataset does not exist.
    """
    registry = project.store.registry
    old, new = registry.get(champion), registry.get(challenger)
    trained = (str(old.lineage.get("dataset")), str(new.lineage.get("dataset")))
    holdout, described = _holdout(project, data, trained)
    fairness = project.spec.monitor.fairness
    verdict = gate(
        load(old.ref, project=project),
        load(new.ref, project=project),
        holdout,
        target=str(old.signature.get("target")),
        spec=project.spec.loop.gate,
        sensitive=fairness.sensitive,
        positive_label=fairness.positive_label,
        seed=seed,
    )
    verdict = audited(project, new.ref, verdict, project.spec.loop.gate)
    return JudgedPair(old.ref, new.ref, described, verdict)


def audited(project: Project, challenger: str, verdict: GateVerdict, spec: GateSpec) -> GateVerdict:
    """``verdict`` with ``spec.audit``'s limits checked on an audit of ``challenger``.

    The audit (only the kinds the limits name) runs when the challenger has
    passed everything else: a rejected one is not worth the minutes. It is
    stored with the version like any ``mlcycle audit``.
    """
    if not spec.audit or not verdict.promote:
        return verdict
    from mlcycle.audit import audit

    kinds = sorted({key.partition(".")[0] for key in spec.audit})
    result = audit(project, challenger, kinds=kinds)
    return verdict.with_audit(result.figures, spec.audit)
