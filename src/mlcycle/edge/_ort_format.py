"""Convert a model to ONNX Runtime's ORT format, for ONNX Runtime Mobile.

Mobile and minimal builds of ONNX Runtime read only ``.ort`` files. The
conversion is the one ONNX Runtime ships
(``python -m onnxruntime.tools.convert_onnx_models_to_ort``), run in a child
process: it prints freely, and a crash in it must not take the caller down.
The "Fixed" optimisation style bakes in the graph optimisations; with no
target platform the converter leaves out x86-only layouts, so the file runs
on ARM devices too.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

from mlcycle.errors import MlcycleError

__all__ = ["CONVERTER", "to_ort_format"]

CONVERTER = "onnxruntime.tools.convert_onnx_models_to_ort"
TIMEOUT_S = 600


def _converter_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the parent package (onnxruntime itself) is missing
        return False


def to_ort_format(onnx_bytes: bytes) -> bytes:
    """The model in ORT format.

    Raises:
        MlcycleError: the converter is not installed, or it failed (the
            message holds the end of its output).
    """
    converter = CONVERTER
    if not _converter_available(converter):
        raise MlcycleError(
            f"cannot write model.ort: ONNX Runtime's converter ({converter}) is not installed; "
            "pip install onnxruntime flatbuffers (the full package, not a minimal build)"
        )
    with tempfile.TemporaryDirectory(prefix="mlcycle-ort-") as work:
        source = Path(work) / "model.onnx"
        source.write_bytes(onnx_bytes)
        output = Path(work) / "out"
        command = [sys.executable, "-m", converter, "--optimization_style", "Fixed"]
        command += ["--output_dir", str(output), str(source)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise MlcycleError(
                f"cannot write model.ort: ONNX Runtime's converter ran past {TIMEOUT_S} s"
            ) from None
        produced = output / "model.ort"
        if done.returncode != 0 or not produced.is_file():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise MlcycleError(
                f"cannot write model.ort: ONNX Runtime's converter failed "
                f"(exit code {done.returncode}): {tail or 'no output'}"
            )
        return produced.read_bytes()
