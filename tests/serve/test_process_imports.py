"""A served process holds ONNX Runtime, numpy, pyarrow and the web stack: never training or monitoring.

Each test starts a fresh interpreter, does what a deployment does for real
(a uvicorn server answering over loopback, ``mlcycle.load(...).predict``)
and reads that process's ``sys.modules``. Imports inside functions count:
the server's alias and traffic polls, its OOD scoring and its log flush all
run before the modules are listed. The edge bundle's ``predict.py`` is
checked in ``tests/edge/test_predict_script.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests._imports import heavy_modules

RECORD = {"income": 52.0, "city": "paris", "member": True}
# Neither of these either: a server reads the registry and the traffic split, not the
# data stack of a Project nor the loop that writes the split.
NOT_SERVED = ("mlcycle.project", "mlcycle.data", "mlcycle.loop", "mlcycle.workflow")


def test_a_real_server_answers_without_the_training_or_monitoring_stack(
    served_project: Path,
) -> None:
    driver = Path(__file__).with_name("_served_process.py")
    done = subprocess.run(
        [sys.executable, str(driver), str(served_project), "loyalty@champion", json.dumps(RECORD)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    answer = report["answer"]
    assert answer["version"] == 1 and len(answer["labels"]) == 1
    assert len(answer["ood"]) == 1  # the version's OOD detector scored the row
    modules = report["modules"]
    assert "onnxruntime" in modules and "pyarrow.parquet" in modules  # it did serve and log
    assert heavy_modules(modules) == []
    assert heavy_modules(modules, NOT_SERVED) == []


def test_load_and_predict_without_the_training_or_monitoring_stack(served_project: Path) -> None:
    code = (
        "import json, sys, mlcycle\n"
        f"model = mlcycle.load('loyalty@champion', project={str(served_project)!r})\n"
        f"labels = model.predict([{RECORD!r}]).labels.tolist()\n"
        "print(json.dumps({'labels': labels, 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["labels"][0] in ("yes", "no")
    assert heavy_modules(report["modules"]) == []
    assert heavy_modules(report["modules"], NOT_SERVED) == []
