"""What a deployment-path process must never hold: the training and monitoring stack."""

from __future__ import annotations

from collections.abc import Iterable

#: torch (training), scikit-learn, scipy and pandas (evaluation, monitoring, data), and
#: the stages that use them, and Ray (an executor's library). A server,
#: ``mlcycle.load(...).predict`` and an edge bundle hold ONNX Runtime, numpy, pyarrow
#: and the web stack.
HEAVY = (
    "torch",
    "ray",
    "sklearn",
    "scipy",
    "pandas",
    "mlcycle.train",
    "mlcycle.evaluate",
    "mlcycle.monitor",
)


def heavy_modules(modules: Iterable[str], heavy: Iterable[str] = HEAVY) -> list[str]:
    """The modules of ``modules`` that are one of ``heavy`` or inside one."""
    roots = tuple(heavy)
    return sorted(m for m in modules if m in roots or m.startswith(tuple(f"{r}." for r in roots)))
