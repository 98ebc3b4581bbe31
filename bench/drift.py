"""Drift report time and peak memory: mlcycle against Evidently's data-drift preset (issue 6).

Set-up (in a temporary folder, removed at the end unless ``--keep``): a
reference and a current Parquet file of ``--rows`` rows each (default
1,000,000), 20 numeric and 5 categorical (string) columns, made from seed 0.
Drift is injected in five columns, the truth the verdicts are checked against:

* ``n00`` normal: mean +0.15 SD; ``n01`` log-normal: +0.3 SD; ``n02``
  uniform: +0.6 SD (three mean shifts of different sizes);
* ``n03`` normal: SD x1.5 around the same mean (a scale change);
* ``c1`` (8 categories): shifted frequencies (Jensen-Shannon distance 0.17).

The other 16 numeric columns (normal, exponential, gamma, Poisson counts,
Student t, beta, a bimodal mixture, log-normal with a heavy tail, a 4-valued
integer, ..., two with 2% missing values) and 4 categorical columns (2 to 200
categories) have the same distribution on both sides.

Arms, each in its own fresh process, interleaved in rotating order:

* ``mlcycle``: ``pyarrow.parquet.read_table`` of both files, then
  ``mlcycle.monitor.drift_report(reference, current)`` with its defaults and
  ``to_dict()`` of the result;
* ``evidently``: ``pandas.read_parquet`` of both files, then
  ``Report([DataDriftPreset()]).run(current, reference)`` with its defaults and
  ``dict()`` of the snapshot. Evidently runs in its own venv, made on first use
  under ``~/.cache/mlcycle-bench/envs/evidently`` (``MLCYCLE_BENCH_CACHE``
  moves it), never in mlcycle's environment;
* ``mlcycle@LABEL`` (only with ``--mlcycle-src LABEL=DIR``): the ``mlcycle`` arm
  importing mlcycle from another tree's ``src/`` (say, the commit before a
  change), to measure a change in the same run.

Both timed regions include loading the two Parquet files from disk (the
figures also show load and report apart); imports are timed apart and
excluded. Seconds are medians over the repeats, the ratio a ratio of medians.
Peak memory is the process's VmHWM (peak resident set, imports and loaded data
included); ``ru_maxrss`` is not used because Linux carries it over ``exec``
from the parent. The script checks that both computed the same statistics
(same test on every column, statistics within 1e-6: ``same work: yes``) and
prints which columns each flagged against the truth.

Usage::

    .venv/bin/python bench/drift.py [--rows N] [--repeats R] [--arms mlcycle,evidently]
        [--mlcycle-src LABEL=DIR ...] [--keep]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("MLCYCLE_BENCH_CACHE", Path.home() / ".cache" / "mlcycle-bench"))
# The peer pinned at the version this bench was written against; 0.7 needs pandas < 3.
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas<3", "pyarrow"]
ARMS = ("mlcycle", "evidently")
TRUTH = ["n00", "n01", "n02", "n03", "c1"]
# Evidently's method names for the tests both sides choose by default at this size.
SAME_TEST = {
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
    "ks": "K-S p_value",
    "chi2": "chi-square p_value",
}

MLCYCLE = """
import json, sys, time
started = time.perf_counter()
import pyarrow.parquet as pq
from mlcycle.monitor import drift_report

def status_mib(key):
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ':')) / 1024

imported = time.perf_counter()
before = status_mib('VmHWM')
reference = pq.read_table(sys.argv[1])
current = pq.read_table(sys.argv[2])
loaded = time.perf_counter()
loaded_mib = status_mib('VmRSS')
result = drift_report(reference, current).to_dict()
done = time.perf_counter()
columns = {c['column']: {k: c[k] for k in ('test', 'statistic', 'threshold', 'drift')}
           for c in result['columns']}
print(json.dumps({'import_s': imported - started, 'load_s': loaded - imported,
                  'report_s': done - loaded, 'seconds': done - imported,
                  'peak_mib': status_mib('VmHWM'), 'before_mib': before, 'loaded_mib': loaded_mib,
                  'columns': columns,
                  'dataset_drift': result['dataset']['drift']}))
"""

Gen = Callable[[np.random.Generator, int], np.ndarray]


def _lognormal_sd(sigma: float) -> float:
    return float(np.sqrt((np.exp(sigma**2) - 1) * np.exp(sigma**2)))


def _numeric_columns() -> dict[str, tuple[Gen, Callable[[np.ndarray], np.ndarray] | None]]:
    """Name -> (reference generator, drift applied to the current sample or None)."""

    def nan2(gen: Gen) -> Gen:
        def g(rng: np.random.Generator, n: int) -> np.ndarray:
            x = gen(rng, n)
            x[rng.random(n) < 0.02] = np.nan
            return x

        return g

    def bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
        return np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(3, 1, n))

    return {
        "n00": (lambda r, n: r.normal(0, 1, n), lambda x: x + 0.15),
        "n01": (lambda r, n: r.lognormal(0, 0.5, n), lambda x: x + 0.3 * _lognormal_sd(0.5)),
        "n02": (lambda r, n: r.uniform(0, 10, n), lambda x: x + 0.6 * 10 / np.sqrt(12)),
        "n03": (lambda r, n: r.normal(50, 10, n), lambda x: 50 + 1.5 * (x - 50)),
        "n04": (lambda r, n: r.normal(0, 1, n), None),
        "n05": (lambda r, n: r.normal(100, 15, n), None),
        "n06": (lambda r, n: r.exponential(1.0, n), None),
        "n07": (lambda r, n: r.gamma(2.0, 2.0, n), None),
        "n08": (lambda r, n: r.poisson(20, n), None),  # int64 counts
        "n09": (lambda r, n: r.standard_t(5, n), None),
        "n10": (lambda r, n: r.beta(2, 5, n), None),
        "n11": (nan2(lambda r, n: r.normal(5, 2, n)), None),
        "n12": (bimodal, None),
        "n13": (lambda r, n: r.uniform(-1, 1, n), None),
        "n14": (lambda r, n: r.lognormal(1, 1, n), None),
        "n15": (lambda r, n: r.integers(0, 4, n), None),  # 4 values: frequency tests
        "n16": (lambda r, n: r.normal(0, 1e-3, n), None),
        "n17": (lambda r, n: r.laplace(0, 1, n), None),
        "n18": (nan2(lambda r, n: r.weibull(1.5, n)), None),
        "n19": (lambda r, n: r.chisquare(3, n), None),
    }


def _categorical_columns() -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Name -> (categories, reference probabilities, current probabilities)."""

    def norm(w: list[float] | np.ndarray) -> np.ndarray:
        a = np.asarray(w, dtype=np.float64)
        return np.asarray(a / a.sum())

    zipf30 = norm(1 / np.arange(1, 31))
    zipf200 = norm(1 / np.arange(1, 201) ** 0.8)
    c1_ref = norm([30, 20, 15, 10, 10, 7, 5, 3])
    c1_cur = norm([18, 20, 15, 10, 10, 7, 5, 15])
    return {
        "c0": (["red", "green", "blue"], norm([5, 3, 2]), norm([5, 3, 2])),
        "c1": ([f"plan_{k}" for k in "abcdefgh"], c1_ref, c1_cur),
        "c2": ([f"city_{i:02d}" for i in range(30)], zipf30, zipf30),
        "c3": ([f"sku_{i:03d}" for i in range(200)], zipf200, zipf200),
        "c4": (["yes", "no"], norm([7, 3]), norm([7, 3])),
    }


def generate(folder: Path, rows: int, chunk: int = 100_000) -> tuple[Path, Path]:
    """Writes ``reference.parquet`` and ``current.parquet`` in row groups (memory stays flat)."""
    numeric, categorical = _numeric_columns(), _categorical_columns()
    paths = folder / "reference.parquet", folder / "current.parquet"
    for side, path in enumerate(paths):
        rng = np.random.default_rng([0, side])
        writer: pq.ParquetWriter | None = None
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            arrays: dict[str, Any] = {}
            for name, (gen, drift) in numeric.items():
                x = gen(rng, n)
                arrays[name] = drift(x) if side == 1 and drift is not None else x
            for name, (cats, p_ref, p_cur) in categorical.items():
                idx = rng.choice(len(cats), size=n, p=p_cur if side == 1 else p_ref)
                arrays[name] = pa.array(np.array(cats, dtype=object)[idx], type=pa.string())
            table = pa.table(arrays)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()
    return paths


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def base_python() -> str:
    return getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable


def ensure_evidently(install_timeout_s: float = 900) -> Path:
    """Evidently's own venv (made on first use); its python."""
    env = CACHE / "envs" / "evidently"
    marker = env / ".bench-requirements"
    python = env / "bin" / "python"
    if marker.exists() and marker.read_text() == "\n".join(EVIDENTLY_REQUIREMENTS):
        return python
    say(f"[env] installing {' '.join(EVIDENTLY_REQUIREMENTS)} into {env} (once)")
    if not python.exists():
        subprocess.run([base_python(), "-m", "venv", str(env)], check=True, timeout=120)
    log = CACHE / "logs" / "install-evidently.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *EVIDENTLY_REQUIREMENTS],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=install_timeout_s,
        )
    if done.returncode != 0:
        raise SystemExit(f"pip install of Evidently failed; see {log}")
    marker.write_text("\n".join(EVIDENTLY_REQUIREMENTS))
    return python


def _run(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, env=env)
    if done.returncode != 0:
        raise SystemExit(f"arm failed: {argv[:2]}\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _flagged(result: dict[str, Any]) -> list[str]:
    return sorted(name for name, c in result["columns"].items() if c["drift"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows on each side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset")
    parser.add_argument(
        "--mlcycle-src",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="an extra arm mlcycle@LABEL importing mlcycle from DIR (another tree's src/), "
        "to measure a change against it in the same run",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    if not arms or any(a not in ARMS for a in arms):
        parser.error(f"--arms: expected a subset of {','.join(ARMS)}")

    commands = {"mlcycle": [sys.executable, "-c", MLCYCLE]}
    envs: dict[str, dict[str, str] | None] = {arm: None for arm in ARMS}
    for spec in args.mlcycle_src:
        label, _, folder = spec.partition("=")
        if not label or not Path(folder, "mlcycle").is_dir():
            parser.error(f"--mlcycle-src {spec!r}: expected LABEL=DIR with DIR/mlcycle")
        arm = f"mlcycle@{label}"
        arms.append(arm)
        commands[arm] = commands["mlcycle"]
        envs[arm] = {**os.environ, "PYTHONPATH": str(Path(folder).resolve())}
    if "evidently" in arms:
        commands["evidently"] = [
            str(ensure_evidently()),
            str(HERE / "_drift_peer" / "evidently_report.py"),
        ]

    tmp = Path(tempfile.mkdtemp(prefix="mlcycle-bench-drift-"))
    try:
        started = time.perf_counter()
        reference, current = generate(tmp, args.rows)
        size = (reference.stat().st_size + current.stat().st_size) / 2**20
        say(
            f"data: 2 x {args.rows:,} rows x (20 numeric + 5 string) columns, "
            f"{size:.0f} MiB of Parquet, in {time.perf_counter() - started:.0f} s"
        )
        samples: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
        for repeat in range(args.repeats):
            for arm in arms[repeat % len(arms) :] + arms[: repeat % len(arms)]:
                load = os.getloadavg()[0]
                result = _run([*commands[arm], str(reference), str(current)], envs[arm])
                result["loadavg_before"] = load
                samples[arm].append(result)
                say(
                    f"  repeat {repeat + 1} {arm}: load+report {result['seconds']:.2f} s "
                    f"(load {result['load_s']:.2f}, report {result['report_s']:.2f}, "
                    f"import {result['import_s']:.2f}), peak {result['peak_mib']:,.0f} MiB, "
                    f"load average before {load:.1f}"
                )
        _summarise(args, arms, samples)
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _summarise(
    args: argparse.Namespace, arms: list[str], samples: dict[str, list[dict[str, Any]]]
) -> None:
    def median(arm: str, key: str) -> float:
        return float(statistics.median(s[key] for s in samples[arm]))

    figures: dict[str, Any] = {
        "rows": args.rows,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "cores": len(os.sched_getaffinity(0)),
        "truth": TRUTH,
    }
    print(
        f"\n| arm | load+report s (median of {args.repeats}) | load s | report s "
        "| RSS after imports | after load | peak RSS |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for arm in arms:
        peak = max(s["peak_mib"] for s in samples[arm])
        before = max(s["before_mib"] for s in samples[arm])
        loaded = max(s["loaded_mib"] for s in samples[arm])
        print(
            f"| {arm} | {median(arm, 'seconds'):.2f} | {median(arm, 'load_s'):.2f} | "
            f"{median(arm, 'report_s'):.2f} | {before:,.0f} MiB | {loaded:,.0f} MiB | "
            f"{peak:,.0f} MiB |"
        )
        figures[arm] = {
            "seconds": median(arm, "seconds"),
            "load_s": median(arm, "load_s"),
            "report_s": median(arm, "report_s"),
            "import_s": median(arm, "import_s"),
            "all_seconds": [s["seconds"] for s in samples[arm]],
            "all_report_s": [s["report_s"] for s in samples[arm]],
            "peak_mib": peak,
            "before_mib": before,
            "loaded_mib": loaded,
            "flagged": _flagged(samples[arm][-1]),
            "loadavg_before": [s["loadavg_before"] for s in samples[arm]],
        }
    if "evidently" in samples:
        figures["evidently"]["version"] = samples["evidently"][0]["version"]
    for arm in arms:
        if arm.startswith("mlcycle@") and "mlcycle" in figures:
            ratio = figures[arm]["seconds"] / figures["mlcycle"]["seconds"]
            report = figures[arm]["report_s"] / figures["mlcycle"]["report_s"]
            figures[arm]["vs_mlcycle"] = ratio
            print(
                f"\n{arm} takes {ratio:.1f}x the time of mlcycle (report alone {report:.1f}x), "
                f"peak {figures[arm]['peak_mib'] / figures['mlcycle']['peak_mib']:.2f}x"
            )
    if "mlcycle" in figures and "evidently" in figures:
        ours, theirs = figures["mlcycle"], figures["evidently"]
        figures["speedup"] = theirs["seconds"] / ours["seconds"]
        figures["speedup_report_only"] = theirs["report_s"] / ours["report_s"]
        figures["memory_ratio"] = ours["peak_mib"] / theirs["peak_mib"]
        print(
            f"\nmlcycle is {figures['speedup']:.1f}x faster (load+report; report alone "
            f"{figures['speedup_report_only']:.1f}x) at {figures['memory_ratio']:.2f} of "
            "Evidently's peak memory"
        )
        figures["same_tests"], figures["max_abs_diff"] = _compare(
            samples["mlcycle"][-1], samples["evidently"][-1]
        )
    for arm in arms:
        flagged = figures[arm]["flagged"]
        verdict = "= truth" if flagged == sorted(TRUTH) else f"!= truth {sorted(TRUTH)}"
        print(f"{arm} flagged: {', '.join(flagged) or 'none'} ({verdict})")
    print(json.dumps(figures))


def _compare(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[bool, float]:
    """Prints the per-column table; returns (same test everywhere, max |statistic diff|)."""
    print(
        "\n| column | truth | mlcycle test | statistic | drift | Evidently test | statistic | drift |"
    )
    print("| --- | --- | --- | ---: | --- | --- | ---: | --- |")
    same, worst = True, 0.0
    for name, o in ours["columns"].items():
        t = theirs["columns"][name]
        same_test = SAME_TEST.get(o["test"]) == t["test"]
        same &= same_test
        if same_test:
            worst = max(worst, abs(o["statistic"] - t["statistic"]))
        print(
            f"| {name} | {'drift' if name in TRUTH else ''} | {o['test']} | "
            f"{o['statistic']:.4f} | {'yes' if o['drift'] else 'no'} | {t['test']} | "
            f"{t['statistic']:.4f} | {'yes' if t['drift'] else 'no'} |"
        )
    verdict = "yes" if same and worst <= 1e-6 else "NO"
    print(
        f"\nsame work: {verdict} (same test on every column: {same}; "
        f"max |statistic difference| {worst:.2g})"
    )
    return same, worst


if __name__ == "__main__":
    main()
