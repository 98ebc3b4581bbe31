"""``mlcycle audit``: explainability, fairness and robustness of a version, stored with it.

:func:`audit` runs the audits asked for, writes one offline HTML report, and
stores a JSON document with the version (:meth:`RegistryStore.add_audit`):
its ``figures`` are what the loop's gate checks (``loop.gate.audit``), and
the version's model card is rewritten with the Explainability, Fairness and
Robustness sections of the latest audit of each kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle._html import esc, html_page, write_page
from mlcycle._numbers import finite_json
from mlcycle.audit import _parts
from mlcycle.errors import ConflictError, SpecError
from mlcycle.registry._card import build_card, dataset_facts
from mlcycle.spec import AUDIT_KINDS

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.store import AuditRecord, ModelVersionRecord

__all__ = ["AuditResult", "audit", "latest_audit_parts"]


@dataclass(frozen=True)
class AuditResult:
    """What :func:`audit` found: per kind its document, the gate's figures, where it is stored."""

    ref: str
    parts: dict[str, dict[str, Any]]  # kind -> the audit's to_dict()
    figures: dict[str, dict[str, float]]  # KIND.FIGURE -> values by label
    record: AuditRecord | None = None
    report: Path | None = None
    results: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    skipped: dict[str, str] = field(default_factory=dict)  # kind -> why it did not apply

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = finite_json(
            {
                "ref": self.ref,
                "kinds": list(self.parts),
                "skipped": self.skipped,
                "figures": self.figures,
                "parts": self.parts,
            }
        )
        out["audit_id"] = self.record.id if self.record else None
        out["report"] = str(self.report) if self.report else None
        return out


def _kinds(kinds: Sequence[str] | None) -> list[str]:
    chosen = list(kinds) if kinds else list(AUDIT_KINDS)
    unknown = [k for k in chosen if k not in AUDIT_KINDS]
    if unknown:
        raise SpecError(f"audit kind {unknown[0]!r} is not one of {', '.join(AUDIT_KINDS)}")
    missing = [k for k in chosen if k not in _parts.PARTS]
    if missing:
        raise SpecError(f"the {missing[0]} audit is not available in this installation")
    return [k for k in AUDIT_KINDS if k in chosen]  # one order, whatever was asked


def audit(
    project: Project,
    ref: str,
    *,
    kinds: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    store: bool = True,
    report: Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> AuditResult:
    """Audit version ``ref`` (``NAME@VERSION`` or ``NAME@ALIAS``).

    Args:
        kinds: any of ``explain``, ``fairness``, ``robustness`` (default: all
            that apply: one that does not, such as fairness without a
            sensitive column, is skipped with the reason in ``skipped``).
        options: per kind, keyword arguments of its audit function
            (``{"fairness": {"sensitive": ["afam"]}, "robustness": {"eps": [0.1]}}``).
        store: record the audit with the version and rewrite its card.
        report: where to write the HTML report (default under ``.mlcycle/reports``).

    Raises:
        SpecError: an unknown kind or option; what each audit refuses.
        NotFoundError: no such version.
    """
    chosen = _kinds(kinds)
    options = dict(options or {})
    # kinds left to the default (and given no options) that do not apply are skipped, with why
    optional = set() if kinds else {k for k in chosen if set(options.get(k) or {}) <= {"seed"}}
    extra = sorted(set(options) - set(chosen))
    if extra:
        raise SpecError(f"audit options for {extra[0]!r}, which this audit does not run")
    say = on_step or (lambda _: None)
    version = project.store.registry.get(ref)
    results: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for kind in chosen:
        say(f"auditing {kind}")
        part = _parts.PARTS[kind]
        try:
            results[kind] = part.run(project, version.ref, dict(options.get(kind) or {}))
        except (SpecError, ConflictError) as exc:  # a kind the version cannot have (a gbm's IG)
            if kind not in optional:
                raise
            skipped[kind] = str(exc)
            say(f"{kind}: skipped ({exc})")
            continue
        parts[kind] = finite_json(part.document(results[kind]))
    if not parts:
        raise SpecError(
            f"no audit applies to {version.ref}: "
            + "; ".join(f"{k}: {why}" for k, why in skipped.items())
        )
    figures: dict[str, dict[str, float]] = {}
    for kind, document in parts.items():
        for name, values in _parts.PARTS[kind].figures(document).items():
            figures[f"{kind}.{name}"] = values
    when = datetime.now(UTC)
    page = _page(version, results, when)
    path = report or (
        project.root
        / ".mlcycle"
        / "reports"
        / f"audit-{version.name}-{version.version}-{when:%Y%m%d-%H%M%S}.html"
    )
    write_page(path, page)
    record = None
    if store:
        record = _store(project, version, parts, figures, page)
    return AuditResult(version.ref, parts, figures, record, path, results, skipped)


def _page(version: ModelVersionRecord, results: Mapping[str, Any], when: datetime) -> str:
    from mlcycle.evaluate._figures import Figures

    figs = Figures()  # plotly.js inlined once, with the first figure of the page
    sections: list[str] = []
    for kind, result in results.items():
        sections += _parts.PARTS[kind].sections(result, figs)
    subtitle = (
        f'<p class="note">{esc(version.ref)} · {esc(", ".join(results))} · '
        f"{when:%Y-%m-%d %H:%M UTC}</p>"
    )
    return html_page(f"mlcycle audit {version.ref}", subtitle, sections)


def latest_audit_parts(project: Project, version: ModelVersionRecord) -> dict[str, dict[str, Any]]:
    """The latest stored document of each audit kind of ``version`` (none: empty)."""
    found: dict[str, dict[str, Any]] = {}
    for record in project.store.registry.audits(version):  # newest first
        missing = [k for k in record.kinds if k not in found]
        if not missing:
            continue
        document = json.loads(project.artifacts.read_bytes(record.document_sha256))
        for kind in missing:
            if kind in document.get("parts", {}):
                found[kind] = document["parts"][kind]
    return found


def _store(
    project: Project,
    version: ModelVersionRecord,
    parts: dict[str, dict[str, Any]],
    figures: dict[str, dict[str, float]],
    page: str,
) -> AuditRecord:
    # NaN (a figure the audit could not compute) is stored as null: JSON has no NaN
    stored = finite_json(figures)
    document = {"ref": version.ref, "kinds": list(parts), "figures": stored, "parts": parts}
    put = project.artifacts.put_bytes
    doc_sha = put(
        json.dumps(document, indent=1, sort_keys=True, default=str).encode(), "application/json"
    ).sha256
    report_sha = put(page.encode(), "text/html").sha256
    # The card shows the latest audit of every kind: this one, and older ones of other kinds.
    latest = {**latest_audit_parts(project, version), **parts}
    card = _card(project, version, latest)
    card_files = {
        "card.md": put(card.markdown().encode(), "text/markdown").sha256,
        "card.html": put(card.html().encode(), "text/html").sha256,
    }
    return project.store.registry.add_audit(
        version,
        kinds=tuple(parts),
        document_sha256=doc_sha,
        report_sha256=report_sha,
        summary={"figures": stored},
        card=card_files,
        actor=project.actor,
    )


def _card(project: Project, version: ModelVersionRecord, parts: dict[str, dict[str, Any]]) -> Any:
    dataset: dict[str, Any] = {}
    ref = version.lineage.get("dataset")
    if ref:
        record = project.datasets.get(str(ref))
        dataset = dataset_facts(record, version.lineage.get("split"))
    sections = {
        _parts.PARTS[kind].heading: _parts.PARTS[kind].card_blocks(document)
        for kind, document in parts.items()
    }
    return build_card(
        name=version.name,
        run_id=version.run_id,
        task=version.task,
        description=version.description,
        dataset=dataset,
        metrics=dict(version.metrics),
        signature=dict(version.signature),
        lineage=dict(version.lineage),
        audits=sections,
    )
