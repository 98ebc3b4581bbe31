"""One way to count cores and one way to write a file whole, for every stage."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle._numbers import finite, finite_json
from mlcycle._system import cores, write_atomic


def test_cores_follow_the_affinity_mask_not_the_machine() -> None:
    assert cores() == len(os.sched_getaffinity(0))
    code = "from mlcycle._system import cores; print(cores())"
    pinned = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
        capture_output=True,
        text=True,
        check=True,
    )
    assert pinned.stdout.strip() == "1"


@pytest.mark.parametrize("sync", [False, True])
def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, sync: bool
) -> None:
    target = tmp_path / "job.json"
    write_atomic(target, lambda tmp: tmp.write_text("old"), sync=sync)

    def full_disk(tmp: Path) -> None:
        tmp.write_bytes(b"ha")  # a full disk leaves a partial file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, full_disk, sync=sync)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]
    write_atomic(target, lambda tmp: tmp.write_text("new"), sync=sync, folders=[tmp_path])
    assert target.read_text() == "new"


def test_finite_numbers_for_json() -> None:
    import numpy as np

    assert finite(np.float32(0.5)) == 0.5 and finite(np.float64("nan")) is None
    assert finite(10**400) is None and finite("1e3") == 1000.0 and finite(False) is None
    assert finite_json((1, {"x": float("-inf")})) == [1, {"x": None}]
