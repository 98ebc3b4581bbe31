"""The explainability names mlcycle.audit exports, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import mlcycle.audit


def test_exported_explainability_members() -> None:
    mine = {
        "ColumnImportance",
        "DEFAULT_PERMUTATIONS",
        "DEFAULT_STEPS",
        "Explanation",
        "ImportanceResult",
        "RowAttribution",
        "explain",
        "html_sections",
        "importance",
    }
    assert mine <= set(mlcycle.audit.__all__)  # the fairness and robustness audits add theirs
    for name in mine:
        assert getattr(mlcycle.audit, name) is not None


def test_importing_the_audits_imports_neither_torch_captum_nor_shap() -> None:
    code = (
        "import sys, mlcycle.audit; "
        "print(sorted(m for m in ('torch', 'captum', 'shap') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
