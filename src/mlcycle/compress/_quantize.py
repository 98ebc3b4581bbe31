"""Quantized variants of a registered graph, made with ONNX Runtime's own tools.

* ``dynamic-int8``: weights stored as int8, activations quantized on the fly
  (``quantize_dynamic``). Cheap to make, no calibration; MatMul becomes
  MatMulInteger and Conv becomes ConvInteger, which on many CPUs is *slower*
  than float convolution: it is measured, never assumed.
* ``static-int8``: int8 weights and uint8 activations in the QDQ format
  (``quantize_static``), activation ranges calibrated on rows of the
  training split (MinMax, Entropy or Percentile; per-channel weights by
  default), so ONNX Runtime fuses QDQ pairs into integer kernels.
* ``fp16``: weights and arithmetic in half precision
  (``onnxruntime.transformers.float16``), inputs and outputs kept float32.
  It pays on GPU providers; on a CPU it is measured and reported only.

Each function takes and returns graph bytes; calibration rows arrive as
validated feeds, in batches, the last one short.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from mlcycle.errors import InferenceError

__all__ = ["CALIBRATIONS", "dynamic_int8", "fp16", "static_int8"]

CALIBRATIONS = ("minmax", "entropy", "percentile")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ORT's quantization tools log and warn about every node they leave as is."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _failed(method: str, exc: Exception) -> InferenceError:
    return InferenceError(f"{method}: ONNX Runtime's quantization tools refused the graph: {exc}")


def dynamic_int8(graph: bytes) -> bytes:
    """Weights in int8, activations quantized at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="mlcycle-quant-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(graph)
        try:
            with _quiet():
                quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        except Exception as exc:  # the tool raises bare Exceptions and KeyErrors
            raise _failed("dynamic-int8", exc) from exc
        return target.read_bytes()


def static_int8(
    graph: bytes,
    batches: Sequence[Mapping[str, np.ndarray[Any, Any]]],
    *,
    calibration: str = "minmax",
    per_channel: bool = True,
) -> bytes:
    """Weights and activations int8 (QDQ), activation ranges from ``batches``.

    Raises:
        SpecError: ``calibration`` is not one of :data:`CALIBRATIONS`.
        InferenceError: ONNX Runtime's tools cannot quantize the graph.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mlcycle.errors import SpecError

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if calibration not in methods:
        raise SpecError(f"calibration: {calibration!r} is not one of {', '.join(CALIBRATIONS)}")
    if not batches:
        raise SpecError("calibration: no rows to calibrate on; static int8 needs some")

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._left = iter(batches)

        def get_next(self) -> dict[str, np.ndarray[Any, Any]] | None:
            batch = next(self._left, None)
            return None if batch is None else dict(batch)

    with tempfile.TemporaryDirectory(prefix="mlcycle-quant-") as folder:
        source = Path(folder) / "fp32.onnx"
        prepared = Path(folder) / "prepared.onnx"
        target = Path(folder) / "int8.onnx"
        source.write_bytes(graph)
        try:
            with _quiet():
                try:  # shape inference and folding first, as ORT's docs advise
                    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
                except Exception:  # a graph the pre-processor cannot read is quantized as is
                    prepared = source
                # The head stays float: probabilities that sum to 1 and are not rounded to
                # 1/256, and a softmax that costs nothing next to the layers before it.
                head = [
                    node.name
                    for node in onnx.load(str(prepared)).graph.node
                    if node.op_type in ("Softmax", "Sigmoid", "LogSoftmax")
                ]
                quantize_static(
                    prepared,
                    target,
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    # Unsigned activations, signed weights (U8S8): the combination ONNX
                    # Runtime's x86 integer kernels are fastest at; S8S8 ran a small CNN
                    # at 1.14x fp32 where U8S8 ran it at 2.3x (batch 64, 2 threads).
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=methods[calibration],
                    nodes_to_exclude=head,
                    op_types_to_quantize=["Conv", "Gemm", "MatMul", "MaxPool", "Relu"],
                    extra_options={"CalibTensorRangeSymmetric": False},
                )
        except Exception as exc:
            raise _failed("static-int8", exc) from exc
        return target.read_bytes()


def fp16(graph: bytes) -> bytes:
    """Weights and arithmetic in float16; inputs and outputs stay float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        with _quiet():
            model = convert_float_to_float16(
                onnx.load_from_string(graph), keep_io_types=True, disable_shape_infer=False
            )
    except Exception as exc:
        raise _failed("fp16", exc) from exc
    return bytes(model.SerializeToString())
