"""Audits of a registered version: explainability, fairness (with mitigation), robustness.

Each audit reads a version and its dataset version's test split, and returns a
result that turns into plain JSON (stored with the version, read by its model
card and the loop's gate) and into sections of one offline HTML report.

The fairness audit (:func:`fairness_audit`) computes SageMaker Clarify's pre-
and post-training bias metrics (:data:`BIAS_METRICS`, keyed ``"CI"``,
``"DPPL"``, ``"DI"``, ...) per facet of each sensitive column, with bootstrap
intervals; :func:`fairness_html_sections` renders it.

Explainability: :func:`importance` (permutation importance of each raw
column on the ONNX graph, any metric of the table, bootstrap intervals) and
:func:`explain` (per-row Integrated Gradients on the PyTorch graph, or SHAP's
permutation explainer on the ONNX graph); :func:`html_sections` renders either.

Mitigation (:func:`mitigate`) makes a fairer variant of a binary classifier
with Fairlearn (``ThresholdOptimizer`` inside the ONNX graph, or
``GridSearch`` / ``ExponentiatedGradient`` retraining the network), registers
it with lineage ``derived_from`` and measures it beside its parent;
:func:`mitigation_sections` renders the comparison.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlcycle.audit._audit import AuditResult, audit, latest_audit_parts
from mlcycle.audit._bias import BIAS_METRICS, POST_TRAINING, PRE_TRAINING, BiasMetric, Tally
from mlcycle.audit._explain import (
    DEFAULT_PERMUTATIONS,
    DEFAULT_STEPS,
    Explanation,
    RowAttribution,
    explain,
    html_sections,
)
from mlcycle.audit._explain_part import PART as _EXPLAIN
from mlcycle.audit._fairness import (
    FacetResult,
    FairnessAudit,
    MetricValue,
    SkippedFacet,
    fairness_audit,
)
from mlcycle.audit._fairness_html import html_sections as fairness_html_sections
from mlcycle.audit._fairness_part import PART as _FAIRNESS
from mlcycle.audit._importance import ColumnImportance, ImportanceResult, importance
from mlcycle.audit._mitigate import CONSTRAINTS as MITIGATION_CONSTRAINTS
from mlcycle.audit._mitigate import METHODS as MITIGATION_METHODS
from mlcycle.audit._mitigate import MitigationResult, mitigate
from mlcycle.audit._mitigate import html_sections as mitigation_sections
from mlcycle.audit._parts import PARTS as _PARTS
from mlcycle.audit._robustness_part import PART as _ROBUSTNESS

_PARTS["explain"] = _EXPLAIN  # what `mlcycle audit --explain` runs
_PARTS["fairness"] = _FAIRNESS  # what `mlcycle audit --fairness` runs
_PARTS["robustness"] = _ROBUSTNESS  # what `mlcycle audit --robustness` runs

__all__ = [
    "BIAS_METRICS",
    "DEFAULT_PERMUTATIONS",
    "DEFAULT_STEPS",
    "MITIGATION_CONSTRAINTS",
    "MITIGATION_METHODS",
    "POST_TRAINING",
    "PRE_TRAINING",
    "AttackPoint",
    "AuditResult",
    "BiasMetric",
    "ColumnImportance",
    "Explanation",
    "FacetResult",
    "FairnessAudit",
    "ImportanceResult",
    "MetricValue",
    "MitigationResult",
    "RobustnessAudit",
    "RowAttribution",
    "SkippedFacet",
    "Tally",
    "attack_rows",
    "audit",
    "eps_key",
    "explain",
    "fairness_audit",
    "fairness_html_sections",
    "html_sections",
    "importance",
    "latest_audit_parts",
    "mitigate",
    "mitigation_sections",
    "robustness_audit",
]

# The attacks need torch: their names load with their module, on first use, so that
# importing the audits (the CLI, the loop's gate) does not import torch.
_LAZY = ("AttackPoint", "RobustnessAudit", "attack_rows", "eps_key", "robustness_audit")

if TYPE_CHECKING:
    from mlcycle.audit._robustness import (
        AttackPoint,
        RobustnessAudit,
        attack_rows,
        eps_key,
        robustness_audit,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("mlcycle.audit._robustness"), name)
    raise AttributeError(f"module 'mlcycle.audit' has no attribute {name!r}")
