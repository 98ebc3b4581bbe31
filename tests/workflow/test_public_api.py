"""The workflow package's surface is pinned."""

from __future__ import annotations

import mlcycle.workflow


def test_exported_members() -> None:
    assert mlcycle.workflow.__all__ == ["Finding", "diagnose", "register", "register_model"]
