"""The batch package's public surface is small and pinned."""

from __future__ import annotations

import mlcycle.batch


def test_exported_members() -> None:
    assert sorted(mlcycle.batch.__all__) == [
        "ClusterScoreSummary",
        "DEFAULT_CHUNK_ROWS",
        "Progress",
        "ScoreSummary",
        "score_file",
        "score_files_on_ray",
    ]
    for name in mlcycle.batch.__all__:
        assert getattr(mlcycle.batch, name) is not None
