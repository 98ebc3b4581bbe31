"""The extension points of mlcycle: one registry per boundary.

Each registry maps the name the spec uses to the class that implements it.
Built-ins are listed by import path and imported on first use, so that
``mlcycle.spec`` can validate a name without importing torch, scipy or pandas.

::

    registry           spec field                 abstract base                  entry-point group
    MODEL_KINDS        train.model.kind           mlcycle.train.ModelKind        mlcycle.model_kinds
    EXECUTORS          train.executor             mlcycle.train.Executor         mlcycle.executors
    DRIFT_TESTS        monitor.columns.*.test     mlcycle.monitor.DriftTest      mlcycle.drift_tests
    TRIGGERS           loop.triggers.<name>       mlcycle.loop.Trigger           mlcycle.triggers
    DATA_SOURCES       data.datasets.*.source     mlcycle.data.DataSource        mlcycle.data_sources
    ARTIFACT_STORES    artifacts.backend          mlcycle.store.ArtifactStore    mlcycle.artifact_stores
    METADATA_BACKENDS  store.url (its scheme)     mlcycle.store.MetadataBackend  mlcycle.metadata_backends

A new implementation is one file holding the class and its registration::

    from mlcycle.monitor import DriftTest
    from mlcycle.plugins import DRIFT_TESTS

    @DRIFT_TESTS.register("energy")
    class EnergyTest(DriftTest): ...

(or an entry point in the group, for a package that mlcycle should find
without being imported first). Every built-in runs the boundary's
conformance suite in ``tests/conformance/``; a plugin can run it too.

Example:
    >>> "ks" in DRIFT_TESTS, MODEL_KINDS.names()
    (True, ('cnn', 'custom', 'gbm', 'linear', 'mlp'))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle._registry import Registry
from mlcycle.errors import DataError

if TYPE_CHECKING:
    from mlcycle.data import DataSource
    from mlcycle.loop import Trigger
    from mlcycle.monitor import DriftTest
    from mlcycle.store import ArtifactStore, MetadataBackend
    from mlcycle.train import Executor, ModelKind

__all__ = [
    "ARTIFACT_STORES",
    "DATA_SOURCES",
    "DRIFT_TESTS",
    "EXECUTORS",
    "METADATA_BACKENDS",
    "MODEL_KINDS",
    "TRIGGERS",
    "Registry",
    "registries",
]

MODEL_KINDS: Registry[type[ModelKind]] = Registry(
    "model kind",
    "mlcycle.model_kinds",
    {
        "mlp": "mlcycle.train._kinds:MLP",
        "cnn": "mlcycle.train._kinds:CNN",
        "linear": "mlcycle.train._kinds:Linear",
        "custom": "mlcycle.train._kinds:Custom",
        "gbm": "mlcycle.train._gbm:GBM",
    },
    base="mlcycle.train._base:ModelKind",
)

EXECUTORS: Registry[type[Executor]] = Registry(
    "executor",
    "mlcycle.executors",
    {"local": "mlcycle.train._executor:LocalExecutor", "ray": "mlcycle.train._ray:RayExecutor"},
    base="mlcycle.train._base:Executor",
)

DRIFT_TESTS: Registry[type[DriftTest]] = Registry(
    "drift test",
    "mlcycle.drift_tests",
    {
        "ks": "mlcycle.monitor._numeric:KSTest",
        "wasserstein": "mlcycle.monitor._numeric:WassersteinTest",
        "chi2": "mlcycle.monitor._counts:ChiSquaredTest",
        "chi2_gof": "mlcycle.monitor._counts:ChiSquaredGoodnessOfFitTest",
        "z": "mlcycle.monitor._counts:ZTest",
        "jensenshannon": "mlcycle.monitor._counts:JensenShannonTest",
        "psi": "mlcycle.monitor._counts:PSITest",
    },
    base="mlcycle.monitor._base:DriftTest",
)

TRIGGERS: Registry[type[Trigger]] = Registry(
    "trigger",
    "mlcycle.triggers",
    {
        "drift": "mlcycle.loop._triggers:DriftTrigger",
        "performance_drop": "mlcycle.loop._triggers:PerformanceDropTrigger",
        "ood_share": "mlcycle.loop._triggers:OODShareTrigger",
        "attribution_drift": "mlcycle.loop._triggers:AttributionDriftTrigger",
        "interval": "mlcycle.loop._triggers:IntervalTrigger",
        "new_labels": "mlcycle.loop._triggers:NewLabelsTrigger",
        "keep_improving": "mlcycle.loop._triggers:KeepImprovingTrigger",
    },
    base="mlcycle.loop._base:Trigger",
)

DATA_SOURCES: Registry[type[DataSource]] = Registry(
    "kind of data source",
    "mlcycle.data_sources",
    {
        "sklearn": "mlcycle.data._sources:SklearnSource",
        "fashion-mnist": "mlcycle.data._fashion:FashionMnistSource",
        "csv": "mlcycle.data._sources:CsvSource",
        "parquet": "mlcycle.data._sources:ParquetSource",
    },
    base="mlcycle.data._base:DataSource",
    error=DataError,
)

ARTIFACT_STORES: Registry[type[ArtifactStore]] = Registry(
    "artifact store",
    "mlcycle.artifact_stores",
    {"fsspec": "mlcycle.store._artifacts:FsspecArtifactStore"},
    base="mlcycle.store._base:ArtifactStore",
)

METADATA_BACKENDS: Registry[type[MetadataBackend]] = Registry(
    "metadata backend",
    "mlcycle.metadata_backends",
    {
        "sqlite": "mlcycle.store._sqlite:SQLiteBackend",
        "postgresql": "mlcycle.store._postgres:PostgreSQLBackend",
    },
    base="mlcycle.store._base:MetadataBackend",
)


def registries() -> dict[str, Registry[Any]]:
    """Every registry by its entry-point group (what ``mlcycle`` can be extended with)."""
    return {
        r.group: r
        for r in (
            MODEL_KINDS,
            EXECUTORS,
            DRIFT_TESTS,
            TRIGGERS,
            DATA_SOURCES,
            ARTIFACT_STORES,
            METADATA_BACKENDS,
        )
    }
