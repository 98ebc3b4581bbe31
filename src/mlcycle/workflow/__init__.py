"""Workflows: work that takes several stages, in order, recorded in the project.

Stages are functions of data that know nothing of each other; a workflow
calls them in order and hands each one's result to the next. It is the only
layer below the CLI that may import every stage, so that the registry, the
server and the monitor stay free of what they do not run.

:func:`register` makes a finished training run a model version::

    run ─► load the network (train) ─► export to ONNX (train) ─► parity check (train)
        ─► monitoring's reference answers and OOD detector (monitor)
        ─► model card and stored version (registry)

:func:`register_model` does the same for a model trained elsewhere (a torch
module, a scikit-learn pipeline, a LightGBM or XGBoost model, an ONNX file)::

    model ─► ONNX (torch.onnx / skl2onnx / onnxmltools) ─► inputs checked against the
        dataset's schema ─► mlcycle's inputs and outputs around it (registry)
        ─► parity against the model itself ─► test metrics (train), reference, OOD, card

Example (in a project with a finished run)::

    from mlcycle.workflow import register
    register(project, run_id, "fraud", alias="champion")
"""

from __future__ import annotations

from mlcycle.workflow._doctor import Finding, diagnose
from mlcycle.workflow._import import register_model
from mlcycle.workflow._register import register

__all__ = ["Finding", "diagnose", "register", "register_model"]
