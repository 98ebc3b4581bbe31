"""Edge bundles: a model version packed to run on a device with ONNX Runtime alone.

:func:`write_bundle` writes a folder holding the ONNX graph, its signature, a
stand-alone ``predict.py`` (stdlib, numpy and onnxruntime: no mlcycle, pandas
or torch), a README for the person on the device and a manifest of sha256
hashes that ``predict.py`` checks before it loads the model.

Example (``onnx_bytes`` and ``signature`` from a registered version)::

    info = write_bundle(Path("dist/iris-edge"), onnx_bytes=onnx_bytes,
                        signature=signature, model_ref="iris@3")
    info.size_bytes, info.latency_ms   # (61234, 0.021)
"""

from __future__ import annotations

from mlcycle.edge._bundle import BundleInfo, write_bundle

__all__ = ["BundleInfo", "write_bundle"]
