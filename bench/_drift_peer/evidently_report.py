"""The Evidently arm of ``bench/drift.py``: its data-drift preset, with its defaults.

Runs in Evidently's own venv (made by ``bench/drift.py``), never in mlcycle's.
Usage: ``python evidently_report.py REFERENCE.parquet CURRENT.parquet``; prints
one JSON line: seconds per phase, peak memory, and each column's method, score,
threshold and verdict.
"""

from __future__ import annotations

import json
import sys
import time


def status_mib(key: str) -> float:
    """VmHWM (peak resident set: ``ru_maxrss`` survives ``exec``, this does not) or VmRSS."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024


def main() -> None:
    reference_path, current_path = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    imported = time.perf_counter()
    before = status_mib("VmHWM")
    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    loaded = time.perf_counter()
    loaded_mib = status_mib("VmRSS")
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    result = snapshot.dict()
    done = time.perf_counter()

    columns = {}
    count = None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            method, threshold, score = config["method"], config["threshold"], metric["value"]
            # Evidently's p-value tests are named "... p_value" and drift below the
            # threshold; its distances drift at or above it.
            drift = score < threshold if "p_value" in method else score >= threshold
            columns[config["column"]] = {
                "test": method,
                "statistic": score,
                "threshold": threshold,
                "drift": bool(drift),
            }
        elif config["type"].endswith(":DriftedColumnsCount"):
            count = metric["value"]
    print(
        json.dumps(
            {
                "version": evidently.__version__,
                "pandas": pd.__version__,
                "import_s": imported - started,
                "load_s": loaded - imported,
                "report_s": done - loaded,
                "seconds": done - imported,
                "peak_mib": status_mib("VmHWM"),
                "before_mib": before,
                "loaded_mib": loaded_mib,
                "columns": columns,
                "drifted_count": count,
            }
        )
    )


if __name__ == "__main__":
    main()
