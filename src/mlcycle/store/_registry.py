"""Registered models in the metadata store: versions, their files, aliases, history.

Version numbers come from a counter on the model row, taken under a row lock
(PostgreSQL) or SQLite's write lock, so two processes registering one name at
once get distinct numbers, and a number is never given twice: deleting a
version (even the latest) retires its number. Every alias move is an event
(who, when, from, to, why) in the same transaction as the move, and rollbacks
replay that history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mlcycle.errors import ConflictError, NotFoundError
from mlcycle.store import _tables as t
from mlcycle.store._names import check_alias, check_name
from mlcycle.store._records import EventRecord, utc

if TYPE_CHECKING:
    from mlcycle.store._metadata import MetadataStore

__all__ = ["AuditRecord", "ModelRecord", "ModelVersionRecord", "RegistryStore", "parse_model_ref"]


def parse_model_ref(ref: str) -> tuple[str, int | str | None]:
    """``NAME``, ``NAME@3``, ``NAME@champion`` → (name, version number, alias or None).

    Raises:
        InvalidNameError: the name or the alias breaks the naming rule.

    Example:
        >>> parse_model_ref("fraud@champion"), parse_model_ref("fraud@2")
        (('fraud', 'champion'), ('fraud', 2))
    """
    name, _, selector = ref.partition("@")
    check_name(name, "model name")
    if selector in ("", "latest"):
        return name, None
    if selector.isascii() and selector.isdigit():  # '²'.isdigit() is True, int('²') fails
        return name, int(selector)
    return name, check_alias(selector)


@dataclass(frozen=True)
class ModelVersionRecord:
    id: int
    name: str
    version: int
    run_id: str | None
    task: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    signature: dict[str, Any]
    description: str | None
    files: dict[str, str]
    aliases: tuple[str, ...]
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class AuditRecord:
    """One audit of a version: which audits it ran, its JSON document and HTML report."""

    id: int
    ref: str  # the version audited, NAME@VERSION
    kinds: tuple[str, ...]  # explain, fairness, robustness
    document_sha256: str
    report_sha256: str | None
    summary: dict[str, Any]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class ModelRecord:
    name: str
    versions: int
    latest: int | None
    aliases: dict[str, int]
    created_at: datetime


def _audit_record(row: t.ModelAudit, ref: str) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        ref=ref,
        kinds=tuple(k for k in row.kinds.split(",") if k),
        document_sha256=row.document_sha256,
        report_sha256=row.report_sha256,
        summary=dict(row.summary),
        created_at=utc(row.created_at),
        created_by=row.created_by,
    )


def _now() -> datetime:
    return datetime.now(UTC)


class RegistryStore:
    """The model-registry part of a :class:`MetadataStore` (``store.registry``)."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    # -- versions -----------------------------------------------------------------

    def add_version(
        self,
        name: str,
        *,
        run_id: str | None,
        task: str,
        metrics: Mapping[str, Any],
        lineage: Mapping[str, Any],
        signature: Mapping[str, Any],
        files: Mapping[str, str],
        actor: str,
        description: str | None = None,
        alias: str | None = None,
        reason: str | None = None,
    ) -> ModelVersionRecord:
        """Create the next version of ``name`` (the model is created with version 1).

        Numbers only grow: after deleting version 3, the next one is 4, not 3.

        With ``alias``, the alias points at the new version in the same
        transaction: there is never a version registered without the alias it
        was registered with.

        Raises:
            InvalidNameError: ``name`` or ``alias`` breaks the naming rule.
        """
        check_name(name, "model name")
        if alias is not None:
            check_alias(alias)
        with self._store._write() as session:
            self._store._insert_ignore(
                session,
                t.RegisteredModel,
                {"name": name, "created_at": _now(), "created_by": actor},
            )
            model = session.scalars(
                select(t.RegisteredModel).where(t.RegisteredModel.name == name).with_for_update()
            ).one()
            number = model.next_version
            model.next_version = number + 1
            row = t.ModelVersion(
                model_id=model.id,
                version=number,
                run_id=run_id,
                task=task,
                metrics=dict(metrics),
                lineage=dict(lineage),
                signature=dict(signature),
                description=description,
                created_at=_now(),
                created_by=actor,
            )
            session.add(row)
            session.flush()
            session.add_all(
                t.ModelFile(version_id=row.id, path=path, artifact_sha256=sha)
                for path, sha in files.items()
            )
            self._store._event(
                session,
                "model.registered",
                "model",
                name,
                actor=actor,
                details={"version": row.version, "run": run_id, "files": dict(files)},
            )
            if alias is not None:
                self._point(session, model, row, alias, actor=actor, reason=reason, rollback=False)
            session.flush()
            return self._record(session, row, name)

    def get(self, ref: str) -> ModelVersionRecord:
        """The version a reference names: ``NAME`` (latest), ``NAME@3``, ``NAME@alias``."""
        name, selector = parse_model_ref(ref)
        with self._store._read() as session:
            model = self._model(session, name)
            query = select(t.ModelVersion).where(t.ModelVersion.model_id == model.id)
            if selector is None:
                row = session.scalars(query.order_by(t.ModelVersion.version.desc())).first()
                if row is None:
                    raise NotFoundError(f"model {name!r} has no versions")
            elif isinstance(selector, int):
                row = session.scalars(query.where(t.ModelVersion.version == selector)).first()
                if row is None:
                    raise NotFoundError(f"model {name!r} has no version {selector}")
            else:
                alias = session.get(t.ModelAlias, (model.id, selector))
                if alias is None:
                    known = self._aliases(session, model.id)
                    hint = ", ".join(f"@{a}" for a in sorted(known)) or "none"
                    raise NotFoundError(
                        f"model {name!r} has no alias @{selector} (aliases: {hint})"
                    )
                row = session.get_one(t.ModelVersion, alias.version_id)
            return self._record(session, row, name)

    def list_versions(self, name: str) -> list[ModelVersionRecord]:
        with self._store._read() as session:
            model = self._model(session, name)
            rows = session.scalars(
                select(t.ModelVersion)
                .where(t.ModelVersion.model_id == model.id)
                .order_by(t.ModelVersion.version)
            ).all()
            return [self._record(session, row, name) for row in rows]

    def list_models(self) -> list[ModelRecord]:
        with self._store._read() as session:
            out = []
            for model in session.scalars(
                select(t.RegisteredModel).order_by(t.RegisteredModel.name)
            ):
                count, latest = session.execute(
                    select(func.count(t.ModelVersion.id), func.max(t.ModelVersion.version)).where(
                        t.ModelVersion.model_id == model.id
                    )
                ).one()
                out.append(
                    ModelRecord(
                        name=model.name,
                        versions=int(count),
                        latest=latest,
                        aliases=self._aliases(session, model.id),
                        created_at=utc(model.created_at),
                    )
                )
            return out

    def delete_version(self, name: str, version: int, *, actor: str, reason: str | None) -> None:
        """Delete a version; refused while an alias points to it."""
        with self._store._write() as session:
            model = self._model(session, name)
            row = session.scalars(
                select(t.ModelVersion).where(
                    t.ModelVersion.model_id == model.id, t.ModelVersion.version == version
                )
            ).first()
            if row is None:
                raise NotFoundError(f"model {name!r} has no version {version}")
            pointing = sorted(
                a.alias
                for a in session.scalars(
                    select(t.ModelAlias).where(t.ModelAlias.version_id == row.id)
                )
            )
            if pointing:
                aliases = ", ".join(f"@{a}" for a in pointing)
                raise ConflictError(
                    f"version {version} of model {name!r} is {aliases}: move the alias to "
                    "another version before deleting it"
                )
            session.execute(delete(t.ModelFile).where(t.ModelFile.version_id == row.id))
            session.execute(delete(t.ModelAudit).where(t.ModelAudit.version_id == row.id))
            session.delete(row)
            self._store._event(
                session,
                "model.deleted",
                "model",
                name,
                actor=actor,
                reason=reason,
                details={"version": version},
            )

    # -- audits -------------------------------------------------------------------

    def add_audit(
        self,
        version: ModelVersionRecord,
        *,
        kinds: tuple[str, ...],
        document_sha256: str,
        report_sha256: str | None,
        summary: Mapping[str, Any],
        card: Mapping[str, str],
        actor: str,
    ) -> AuditRecord:
        """Record an audit of ``version`` and point its card files at ``card`` (path → sha256).

        The card is documentation of the version, rewritten to show its audits;
        the model's own files (graph, weights, signature) never change. Audit,
        card and the ``model.audited`` event are one transaction.

        Raises:
            NotFoundError: the version was deleted meanwhile.
        """
        with self._store._write() as session:
            row = session.get(t.ModelVersion, version.id)
            if row is None:
                raise NotFoundError(f"model version {version.ref} no longer exists")
            audit = t.ModelAudit(
                version_id=row.id,
                kinds=",".join(kinds),
                document_sha256=document_sha256,
                report_sha256=report_sha256,
                summary=dict(summary),
                created_at=_now(),
                created_by=actor,
            )
            session.add(audit)
            for path, sha in card.items():
                file = session.get(t.ModelFile, (row.id, path))
                if file is None:
                    session.add(t.ModelFile(version_id=row.id, path=path, artifact_sha256=sha))
                else:
                    file.artifact_sha256 = sha
            session.flush()
            self._store._event(
                session,
                "model.audited",
                "model",
                version.name,
                actor=actor,
                details={"version": version.version, "audit": audit.id, "kinds": list(kinds)},
            )
            return _audit_record(audit, version.ref)

    def audits(self, version: ModelVersionRecord) -> list[AuditRecord]:
        """Every audit of ``version``, the newest first."""
        with self._store._read() as session:
            rows = session.scalars(
                select(t.ModelAudit)
                .where(t.ModelAudit.version_id == version.id)
                .order_by(t.ModelAudit.created_at.desc(), t.ModelAudit.id.desc())
            ).all()
            return [_audit_record(row, version.ref) for row in rows]

    # -- aliases ------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        version: int,
        alias: str,
        *,
        actor: str,
        reason: str | None = None,
        rollback: bool = False,
    ) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed to before."""
        check_alias(alias)
        with self._store._write() as session:
            model = self._model(session, name, lock=True)
            row = session.scalars(
                select(t.ModelVersion).where(
                    t.ModelVersion.model_id == model.id, t.ModelVersion.version == version
                )
            ).first()
            if row is None:
                raise NotFoundError(f"model {name!r} has no version {version}")
            return self._point(
                session, model, row, alias, actor=actor, reason=reason, rollback=rollback
            )

    def _point(
        self,
        session: Session,
        model: t.RegisteredModel,
        row: t.ModelVersion,
        alias: str,
        *,
        actor: str,
        reason: str | None,
        rollback: bool,
    ) -> int | None:
        """Move (or create) ``alias`` to ``row`` and record the move; the version before."""
        current = session.get(t.ModelAlias, (model.id, alias))
        previous = None
        if current is None:
            session.add(
                t.ModelAlias(
                    model_id=model.id,
                    alias=alias,
                    version_id=row.id,
                    updated_at=_now(),
                    updated_by=actor,
                )
            )
        else:
            previous = session.get_one(t.ModelVersion, current.version_id).version
            current.version_id = row.id
            current.updated_at = _now()
            current.updated_by = actor
        self._store._event(
            session,
            "alias.moved",
            "model",
            model.name,
            actor=actor,
            reason=reason,
            details={"alias": alias, "from": previous, "to": row.version, "rollback": rollback},
        )
        return previous

    def remove_alias(
        self, name: str, alias: str, *, actor: str, reason: str | None = None
    ) -> int | None:
        """Take ``alias`` off the model; returns the version it named (None: it was not set).

        Recorded as an ``alias.moved`` event to ``None``, so the history shows it.
        """
        with self._store._write() as session:
            model = self._model(session, name, lock=True)
            current = session.get(t.ModelAlias, (model.id, alias))
            if current is None:
                return None
            previous = session.get_one(t.ModelVersion, current.version_id).version
            session.delete(current)
            self._store._event(
                session,
                "alias.moved",
                "model",
                name,
                actor=actor,
                reason=reason,
                details={"alias": alias, "from": previous, "to": None, "rollback": False},
            )
            return previous

    def history(self, name: str, alias: str | None = None) -> list[EventRecord]:
        """Registrations, deletions and alias moves of a model, oldest first."""
        events = list(
            reversed(self._store.list_events(entity_type="model", entity_id=name, limit=100_000))
        )
        if alias is not None:
            events = [
                e for e in events if e.action == "alias.moved" and e.details.get("alias") == alias
            ]
        return events

    def rollback_target(self, name: str, alias: str) -> int:
        """The version ``alias`` pointed to before its current one (rollbacks undo moves)."""
        stack: list[int] = []
        for event in self.history(name, alias):
            if event.details.get("rollback"):
                if stack:
                    stack.pop()
            elif event.details.get("to") is None:  # taken off: nothing to roll back to
                stack.clear()
            else:
                stack.append(int(event.details["to"]))
        if len(stack) < 2:
            raise ConflictError(
                f"@{alias} of model {name!r} has no earlier version to roll back to"
            )
        return stack[-2]

    # -- helpers ------------------------------------------------------------------

    def _model(self, session: Session, name: str, *, lock: bool = False) -> t.RegisteredModel:
        """The model's row (``lock``: held for update until the transaction ends)."""
        query = select(t.RegisteredModel).where(t.RegisteredModel.name == name)
        model = session.scalars(query.with_for_update() if lock else query).first()
        if model is None:
            known = session.scalars(
                select(t.RegisteredModel.name).order_by(t.RegisteredModel.name)
            ).all()
            hint = f"; registered: {', '.join(known)}" if known else "; none is registered yet"
            raise NotFoundError(f"model {name!r} is not registered{hint}")
        return model

    def _aliases(self, session: Session, model_id: int) -> dict[str, int]:
        rows = session.execute(
            select(t.ModelAlias.alias, t.ModelVersion.version)
            .join(t.ModelVersion, t.ModelVersion.id == t.ModelAlias.version_id)
            .where(t.ModelAlias.model_id == model_id)
        )
        return {alias: version for alias, version in rows}

    def _record(self, session: Session, row: t.ModelVersion, name: str) -> ModelVersionRecord:
        files = {
            path: sha
            for path, sha in session.execute(
                select(t.ModelFile.path, t.ModelFile.artifact_sha256).where(
                    t.ModelFile.version_id == row.id
                )
            )
        }
        aliases = tuple(
            sorted(
                session.scalars(
                    select(t.ModelAlias.alias).where(t.ModelAlias.version_id == row.id)
                ).all()
            )
        )
        return ModelVersionRecord(
            id=row.id,
            name=name,
            version=row.version,
            run_id=row.run_id,
            task=row.task,
            metrics=row.metrics,
            lineage=row.lineage,
            signature=row.signature,
            description=row.description,
            files=files,
            aliases=aliases,
            created_at=utc(row.created_at),
            created_by=row.created_by,
        )
