"""The metadata store: what exists, where its bytes are, and who changed what.

One class over SQLAlchemy that works the same on SQLite and PostgreSQL (the
conformance suite in ``tests/store`` runs on both). Each public method is one
transaction; every change that matters writes an event in the same
transaction, so the audit log never disagrees with the data (the rules:
:mod:`mlcycle.store._transactions`).

The methods come by record family, one module each: the event log
(:mod:`~mlcycle.store._event_log`), artifacts
(:mod:`~mlcycle.store._artifact_records`), datasets and their splits
(:mod:`~mlcycle.store._dataset_records`), runs with their metrics and tags
(:mod:`~mlcycle.store._run_records`); the model registry is a collaborating
class, ``store.registry`` (:mod:`~mlcycle.store._registry`).

Example:
    >>> store = MetadataStore("sqlite://")
    >>> run = store.create_run(name="first", params={"lr": 0.1}, actor="me")
    >>> store.log_metrics(run.id, [("loss", 0, 0.9), ("loss", 1, 0.5)])
    >>> [p.value for p in store.get_metrics(run.id, "loss")]
    [0.9, 0.5]
"""

from __future__ import annotations

from sqlalchemy.orm import sessionmaker

from mlcycle.store._artifact_records import ArtifactRecords
from mlcycle.store._dataset_records import DatasetRecords
from mlcycle.store._engine import READ_ONLY, make_engine, upgrade
from mlcycle.store._event_log import EventLog
from mlcycle.store._registry import RegistryStore
from mlcycle.store._run_pages import RunPages
from mlcycle.store._run_records import RunRecords

__all__ = ["MetadataStore"]


class MetadataStore(EventLog, ArtifactRecords, DatasetRecords, RunRecords, RunPages):
    """Datasets, runs, artifacts and the event log, in one SQL database.

    Args:
        url: a SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql://…``).
        migrate: apply pending schema migrations first (the default).
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self.registry = RegistryStore(self)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
