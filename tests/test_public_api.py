"""The public surface is small and pinned; the error tree is what its docstring draws."""

from __future__ import annotations

import subprocess
import sys

import mlcycle
import mlcycle.errors as errors


def test_exported_members() -> None:
    assert sorted(mlcycle.__all__) == [
        "ConflictError",
        "DataError",
        "IntegrityError",
        "InvalidNameError",
        "MlcycleError",
        "NotFoundError",
        "ParityError",
        "Project",
        "SpecError",
        "StoreError",
        "__version__",
        "load",
        "register_model",
    ]
    for name in mlcycle.__all__:
        assert getattr(mlcycle, name) is not None


def test_error_tree() -> None:
    parents = {
        errors.SpecError: (errors.MlcycleError, ValueError),
        errors.DataError: (errors.MlcycleError, ValueError),
        errors.StoreError: (errors.MlcycleError,),
        errors.IntegrityError: (errors.StoreError,),
        errors.InvalidNameError: (errors.MlcycleError, ValueError),
        errors.NotFoundError: (errors.MlcycleError, LookupError),
        errors.ConflictError: (errors.MlcycleError,),
        errors.ParityError: (errors.MlcycleError,),
        errors.InferenceError: (errors.MlcycleError,),
        errors.Overloaded: (errors.MlcycleError,),
    }
    for cls, bases in parents.items():
        for base in bases:
            assert issubclass(cls, base), (cls, base)
        assert cls.__name__ in (errors.__doc__ or "")
    err = errors.IntegrityError("model.onnx", "a" * 64, "b" * 64)
    assert (
        str(err) == f"artifact 'model.onnx' is corrupt: expected sha256 {'a' * 64}, got {'b' * 64}"
    )


def test_importing_mlcycle_and_its_stores_imports_neither_torch_nor_the_data_stack() -> None:
    code = (
        "import sys, mlcycle, mlcycle.store, mlcycle.errors, mlcycle.spec, mlcycle.registry, "
        "mlcycle.edge; "
        "print(sorted(m for m in ('torch', 'sklearn', 'mlcycle.data') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_serving_monitoring_and_the_loop_never_import_torch() -> None:
    code = (
        "import sys, mlcycle.serve, mlcycle.monitor, mlcycle.loop, mlcycle.batch\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
