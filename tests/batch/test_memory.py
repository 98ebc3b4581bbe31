"""Memory stays flat: twice the rows, the same peak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import Scoring

# Peak RSS once the model is loaded, then after scoring the whole file. VmHWM, not
# ru_maxrss: Linux carries ru_maxrss over exec, so a child would report its parent's peak.
MEASURE = """
import json, sys
import mlcycle
from mlcycle.batch import score_file

def peak_mb():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) / 1024

mlcycle.load('cancer@champion', project=sys.argv[3])
before = peak_mb()
summary = score_file('cancer@champion', sys.argv[1], sys.argv[2], project=sys.argv[3])
print(json.dumps({"before_mb": before, "after_mb": peak_mb(), "rows": summary.scored}))
"""


def _write(path: Path, rows: int, names: list[str]) -> None:
    rng = np.random.default_rng(0)
    schema = pa.schema([("patient_id", pa.int64()), *((n, pa.float64()) for n in names)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            columns = [pa.array(np.arange(start, start + n))]
            columns += [pa.array(rng.gamma(2.0, 10.0, n)) for _ in names]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def _peak(scoring: Scoring, source: Path, output: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(source), str(output), str(scoring.root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, float] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_file(scoring: Scoring, tmp_path: Path) -> None:
    # Two files past the first chunks' warm-up (both large enough for the call size to be
    # measured): twice the rows, ~250 MB more values, the same peak.
    names = scoring.cancer.input_names
    _write(tmp_path / "large.parquet", 1_000_000, names)  # 31 columns, ~250 MB as float64
    _write(tmp_path / "twice.parquet", 2_000_000, names)

    large = _peak(scoring, tmp_path / "large.parquet", tmp_path / "large.out.parquet")
    twice = _peak(scoring, tmp_path / "twice.parquet", tmp_path / "twice.out.parquet")

    assert (large["rows"], twice["rows"]) == (1_000_000, 2_000_000)
    growth = twice["after_mb"] - twice["before_mb"]
    assert growth < 512, twice  # well under 1 GiB, for a file of ~500 MB of values
    assert twice["after_mb"] - large["after_mb"] < 64, (large, twice)  # flat, not proportional
