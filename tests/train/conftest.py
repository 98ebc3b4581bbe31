from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcycle import Project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    with Project.init(tmp_path / "proj", name="proj") as p:
        yield p
