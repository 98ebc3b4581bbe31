"""Batch scoring throughput and memory against the raw ONNX Runtime ceiling (issue 5).

Set-up (everything in a temporary folder, removed at the end unless ``--keep``):

* an input of ``--rows`` rows (default 5,000,000) x 30 float64 feature columns
  plus an int64 ``row_id``, as one Parquet file in row groups of 100,000 rows;
* a temporary project where a 30-feature MLP (mlcycle's default, 30 -> 128 ->
  64 -> 2) is trained for 2 epochs on 2,000 synthetic rows and registered as
  ``bench@champion``.

Arms, each in its own fresh process, interleaved in rotating order:

* ``score``: ``mlcycle.batch.score_file`` with its defaults (65,536-row chunks,
  one thread per core, every chunk written to the prediction log), from the
  Parquet file to a Parquet output;
* ``score-nolog``: the same with ``log=False``;
* ``score-sample``: the same logging a tenth of the rows (``log_sample=0.1``);
* ``ort@chunk``: the ceiling as the issue states it: the same ONNX graph in one
  ONNX Runtime session (same session options, one intra-op thread per worker,
  as many workers as ``score`` uses), run with all outputs on the same rows
  already in memory as float32 arrays, in batches as large as the chunks;
* ``ort@best``: a stricter ceiling: only the ``probabilities`` output, run in
  slices of 1,024 to 32,768 rows, the fastest of them (``score_file``
  measures its own slice size on the first chunk of an input of a million
  rows or more; each ``score`` arm reports the size it chose).

The timed region of ``score`` is the whole ``score_file`` call (project open
and model load included); of the ``ort`` arms, the runs only (loading the data
into memory is excluded). Rows/s are medians over the repeats; ratios are
ratios of medians. ``steady`` is a ``score`` arm's rate from the end of its
first chunk to its last, leaving out the fixed start (imports, project open,
model load) and the first chunk's calibration, which the ``ort`` arms do not
pay. ``CPU s per 1M rows`` is the process's CPU time (all threads) per
million rows: on a shared machine, where rates move with the others' load,
it is the cost of the work itself (for ``ort@best``, at its best slice).
Peak memory is the process's VmHWM (peak resident set);
``ru_maxrss`` is not used because Linux carries it over ``exec`` from the
parent. The script checks that ``score`` and the ceiling computed the same
thing (the probabilities of the first chunk agree within 1e-6).

Usage::

    .venv/bin/python bench/batch.py [--rows N] [--repeats R] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = [f"x{i:02d}" for i in range(30)]
SWEEP = (1_024, 2_048, 4_096, 8_192, 16_384, 32_768)  # slice sizes the stricter ceiling tries
MODEL = "bench@champion"

SCORE = """
import json, sys, time
from mlcycle.batch import score_file

def peak_mb():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmHWM')) / 1024

source, output, project, log = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
before = peak_mb()
marks = []  # (time, rows done) after each chunk: the steady rate leaves out start and first chunk
cpu = time.process_time()
s = score_file('bench@champion', source, output, project=project, log=log != 'nolog',
               log_sample=0.1 if log == 'sample' else 1.0,
               progress=lambda done, total: marks.append((time.perf_counter(), done)))
cpu = time.process_time() - cpu
(t0, r0), (t1, r1) = marks[1], marks[-1]
print(json.dumps({'rows_per_s': s.scored / s.seconds, 'seconds': s.seconds, 'rows': s.scored,
                  'steady_rows_per_s': (r1 - r0) / (t1 - t0),
                  'cpu_s_per_mrow': cpu / s.scored * 1e6,
                  'slice_rows': s.slice_rows, 'slice_choice': s.slice_choice,
                  'calibration_ms': s.calibration_s * 1000, 'slice_rates': s.slice_rates,
                  'workers': s.workers, 'threads': s.threads,
                  'peak_mb': peak_mb(), 'before_mb': before}))
"""

CEILING = """
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np, pyarrow.parquet as pq
import mlcycle

source, project, chunk, check = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sweep = [int(s) for s in sys.argv[5].split(',')]
cores = len(os.sched_getaffinity(0))
workers = min(cores, 4)
model = mlcycle.load('bench@champion', project=project, threads=max(1, cores // workers))
names = model.input_names
feeds = []
for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk, columns=names):
    feeds.append({n: batch.column(n).to_numpy().astype(np.float32) for n in names})
rows = sum(len(f[names[0]]) for f in feeds)
session = model.session

def whole(f):
    return session.run(None, f)

def sliced(size):
    def run(f):
        n = len(f[names[0]])
        return [session.run(['probabilities'], {k: v[i:i + size] for k, v in f.items()})
                for i in range(0, n, size)]
    return run

cpu = {}

def rate(run, key=None):
    run(feeds[0])
    with ThreadPoolExecutor(workers) as pool:
        start, used = time.perf_counter(), time.process_time()
        for _ in pool.map(run, feeds):
            pass
        cpu[key] = (time.process_time() - used) / rows * 1e6
        return rows / (time.perf_counter() - start)

np.save(check, whole(feeds[0])[0])
result = {'workers': workers, 'rows': rows, 'ort@chunk': rate(whole)}
best = {size: rate(sliced(size), size) for size in sweep}
result['best_slice'] = max(best, key=best.get)
result['ort@best'] = best[result['best_slice']]
result['cpu_s_per_mrow'] = cpu[result['best_slice']]
print(json.dumps(result))
"""


def generate(path: Path, rows: int) -> None:
    """``rows`` x 30 float64 columns and a row id, in row groups of 100,000 (memory stays flat)."""
    rng = np.random.default_rng(0)
    schema = pa.schema([("row_id", pa.int64()), *((n, pa.float64()) for n in FEATURES)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            x = rng.normal(size=(n, len(FEATURES)))
            columns = [
                pa.array(np.arange(start, start + n)),
                *(pa.array(x[:, j]) for j in range(30)),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def register_model(root: Path) -> str:
    """Train the default MLP on 2,000 synthetic rows for 2 epochs and register it."""
    from mlcycle import Project
    from mlcycle.registry import register
    from mlcycle.train import train

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, len(FEATURES)))
    y = np.where(x[:, :5].sum(axis=1) + 0.5 * x[:, 5] * x[:, 6] > 0, "yes", "no")
    table = pa.table({**{n: x[:, j] for j, n in enumerate(FEATURES)}, "y": y})
    with Project.init(root, name="bench") as project:
        project.datasets.add(table, name="synthetic", target="y")
        outcome = train(project, data="synthetic", overrides={"max_epochs": 2})
        return register(project, outcome.run_id, "bench", alias="champion").ref


def _run(code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise SystemExit(f"arm failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    from mlcycle.batch import DEFAULT_CHUNK_ROWS

    tmp = Path(tempfile.mkdtemp(prefix="mlcycle-bench-batch-"))
    try:
        started = time.perf_counter()
        source = tmp / "input.parquet"
        generate(source, args.rows)
        print(
            f"input: {args.rows:,} rows x 30 float64 ({source.stat().st_size / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        project = tmp / "proj"
        ref = register_model(project)
        print(f"model: {ref} (30 -> 128 -> 64 -> 2 MLP)", flush=True)

        arms = ["score", "score-nolog", "score-sample", "ort"]
        scoring = ("score", "score-nolog", "score-sample")
        samples: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
        check = tmp / "ceiling_first_chunk.npy"
        for repeat in range(args.repeats):
            for arm in arms[repeat % len(arms) :] + arms[: repeat % len(arms)]:
                if arm == "ort":
                    result = _run(
                        CEILING,
                        str(source),
                        str(project),
                        str(DEFAULT_CHUNK_ROWS),
                        str(check),
                        ",".join(map(str, SWEEP)),
                    )
                else:
                    log = {"score": "log", "score-nolog": "nolog", "score-sample": "sample"}[arm]
                    result = _run(
                        SCORE, str(source), str(tmp / f"{arm}.parquet"), str(project), log
                    )
                    shutil.rmtree(project / ".mlcycle" / "log", ignore_errors=True)
                samples[arm].append(result)
                print(
                    f"  repeat {repeat + 1} {arm}: "
                    + ", ".join(
                        f"{k} {v:,.0f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in result.items()
                    ),
                    flush=True,
                )

        ours = pq.read_table(tmp / "score.parquet", columns=["proba_no", "proba_yes"]).slice(
            0, DEFAULT_CHUNK_ROWS
        )
        theirs = np.load(check)
        diff = float(np.abs(np.column_stack([c.to_numpy() for c in ours.columns]) - theirs).max())
        rows_out = pq.read_metadata(tmp / "score.parquet").num_rows

        def median(arm: str, key: str) -> float:
            return statistics.median(s[key] for s in samples[arm])

        ceiling_chunk, ceiling_best = median("ort", "ort@chunk"), median("ort", "ort@best")
        rates = {
            "ort@chunk": ceiling_chunk,
            "ort@best": ceiling_best,
            "score": median("score", "rows_per_s"),
            "score-nolog": median("score-nolog", "rows_per_s"),
            "score-sample": median("score-sample", "rows_per_s"),
        }
        peaks = {arm: max(s["peak_mb"] for s in samples[arm]) for arm in scoring}
        steady = {arm: median(arm, "steady_rows_per_s") for arm in scoring}
        # CPU seconds per million rows: the cost of the work whatever else runs on the machine
        cpu = {arm: median(arm, "cpu_s_per_mrow") for arm in (*scoring, "ort")}
        slices = {
            arm: ", ".join(f"{s['slice_rows']:,} ({s['slice_choice']})" for s in samples[arm])
            for arm in scoring
        }
        slices["ort@best"] = ", ".join(f"{s['best_slice']:,}" for s in samples["ort"])
        figures = {
            "rows": args.rows,
            "chunk_rows": DEFAULT_CHUNK_ROWS,
            "workers": samples["ort"][0]["workers"],
            **{f"{arm}_rows_per_s": rate for arm, rate in rates.items()},
            **{f"{arm}_vs_ort@chunk": rates[arm] / ceiling_chunk for arm in scoring},
            **{f"{arm}_vs_ort@best": rates[arm] / ceiling_best for arm in scoring},
            **{f"{arm}_steady_rows_per_s": steady[arm] for arm in scoring},
            **{f"{arm}_steady_vs_ort@best": steady[arm] / ceiling_best for arm in scoring},
            **{f"{arm}_slices": slices[arm] for arm in scoring},
            "ort@best_slices": slices["ort@best"],
            **{f"{arm}_cpu_s_per_mrow": c for arm, c in cpu.items()},
            **{f"{arm}_cpu_ratio_vs_ort@best": cpu["ort"] / cpu[arm] for arm in scoring},
            "calibration_ms": [round(s["calibration_ms"], 1) for a in scoring for s in samples[a]],
            **{f"{arm}_peak_mb": peak for arm, peak in peaks.items()},
            "peak_mb_before_scoring": max(s["before_mb"] for s in samples["score"]),
            "max_abs_diff_first_chunk": diff,
            "rows_written": rows_out,
            "repeats": args.repeats,
            "python": platform.python_version(),
            "cores": len(os.sched_getaffinity(0)),
        }
        labels = {
            "ort@chunk": f"ort@chunk (all outputs, {DEFAULT_CHUNK_ROWS:,}-row batches)",
            "ort@best": f"ort@best (probabilities, best of {len(SWEEP)} slice sizes)",
            "score": "score_file (log on, the default)",
            "score-nolog": "score_file (log=False)",
            "score-sample": "score_file (log_sample=0.1)",
        }
        print()
        print(
            f"| arm | rows/s (median of {args.repeats}) | vs ort@chunk | vs ort@best "
            "| steady vs ort@best | CPU s per 1M rows | slice rows (each run) | peak RSS |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
        for arm, rate in rates.items():
            peak = f"{peaks[arm]:.0f} MiB" if arm in peaks else ""
            still = f"{steady[arm] / ceiling_best:.2f}" if arm in steady else ""
            used = cpu.get(arm, cpu["ort"] if arm == "ort@best" else None)
            used_text = f"{used:.2f}" if used is not None else ""
            print(
                f"| {labels[arm]} | {rate:,.0f} | {rate / ceiling_chunk:.2f} | "
                f"{rate / ceiling_best:.2f} | {still} | {used_text} | {slices.get(arm, '')} "
                f"| {peak} |"
            )
        print(
            f"\nsame work: {rows_out:,} rows written; first chunk's probabilities, score vs "
            f"ONNX Runtime: max |diff| {diff:.2g}"
        )
        print(json.dumps(figures))
        if diff > 1e-6 or rows_out != args.rows:
            raise SystemExit("the arms did not compute the same thing")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
