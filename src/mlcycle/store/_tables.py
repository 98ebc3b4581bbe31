"""ORM tables of the metadata store.

The schema is owned by the Alembic migrations in ``migrations/versions``;
these classes mirror it, and a test checks that the two never drift apart.
Later stages add their tables beside these (model versions, aliases,
deployments, monitoring reports) in new migrations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger autoincrement keys must be INTEGER on SQLite to alias its rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")
UtcDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime}  # noqa: RUF012


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version"),
        UniqueConstraint("dataset_id", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    source: Mapped[str] = mapped_column(Text)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    schema: Mapped[dict[str, Any]]
    profile: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class DatasetSplit(Base):
    """Row indices of train/validation/test for one version, fixed once recorded."""

    __tablename__ = "dataset_splits"
    __table_args__ = (UniqueConstraint("version_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]]
    counts: Mapped[dict[str, Any]]
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    created_at: Mapped[datetime]


class Artifact(Base):
    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    uri: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index(None, "experiment", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    experiment: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    params: Mapped[dict[str, Any]]
    summary: Mapped[dict[str, Any]]
    dataset_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL")
    )
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # Written by the process doing the run while it works (see MetadataStore.heartbeat).
    heartbeat_at: Mapped[datetime | None]
    heartbeat_every_s: Mapped[float | None] = mapped_column(Float)


class RunTag(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (Index(None, "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)
    logged_at: Mapped[datetime]


class RunArtifact(Base):
    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))


class Event(Base):
    """Append-only audit log: database triggers refuse UPDATE and DELETE."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]]


class RegisteredModel(Base):
    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # The number the next version gets: only ever grows, so a deleted number is never reused.
    next_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    task: Mapped[str] = mapped_column(String(20))
    metrics: Mapped[dict[str, Any]]
    lineage: Mapped[dict[str, Any]]
    signature: Mapped[dict[str, Any]]
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class ModelFile(Base):
    __tablename__ = "model_files"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))


class ModelAlias(Base):
    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class ModelAudit(Base):
    """One audit of a version (explainability, fairness, robustness): its JSON and HTML report."""

    __tablename__ = "model_audits"
    __table_args__ = (Index(None, "version_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    kinds: Mapped[str] = mapped_column(String(100))  # "explain,fairness,robustness"
    document_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    report_sha256: Mapped[str | None] = mapped_column(ForeignKey("artifacts.sha256"))
    summary: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
