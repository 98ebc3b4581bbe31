"""Rich renderings shared by several commands (dataset profiles, runs)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mlcycle._runs import resume_command
from mlcycle.store import DatasetVersionRecord, RunRecord


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def dataset_version_json(version: DatasetVersionRecord) -> dict[str, Any]:
    return {
        "name": version.dataset,
        "version": version.version,
        "ref": version.ref,
        "fingerprint": version.fingerprint,
        "artifact_sha256": version.artifact_sha256,
        "source": version.source,
        "rows": version.n_rows,
        "target": version.schema.get("target"),
        "task": version.schema.get("task"),
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "schema": version.schema,
        "profile": version.profile,
    }


def render_profile(console: Console, version: DatasetVersionRecord) -> None:
    """Header, one line per column, class balance and warnings."""
    profile = version.profile
    header = Text.assemble(
        (version.ref, "bold cyan"),
        f"  {profile.get('rows', version.n_rows)} rows, ",
        f"{profile.get('features', '?')} features, ",
        f"task {profile.get('task') or '-'}, target {profile.get('target') or '-'}\n",
        (f"source {version.source}  fingerprint {version.fingerprint[:16]}…", "dim"),
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for title in ("column", "role", "type", "missing", "min", "mean", "max", "top values"):
        table.add_column(
            title, justify="right" if title in {"missing", "min", "mean", "max"} else "left"
        )
    for name, col in profile.get("per_column", {}).items():
        top = ""
        freqs = col.get("frequencies") or {}
        if freqs:
            top = ", ".join(f"{k} ({v})" for k, v in list(freqs.items())[:3] if k != "__other__")
        elif col.get("shape"):
            top = "image " + "x".join(str(s) for s in col["shape"])
        missing = col.get("missing", 0)
        table.add_row(
            name,
            col.get("role", ""),
            col.get("type", ""),
            str(missing) if missing else "",
            _num(col.get("min", col.get("pixel_min"))),
            _num(col.get("mean", col.get("pixel_mean"))),
            _num(col.get("max", col.get("pixel_max"))),
            top,
        )
    parts: list[Any] = [header, table]
    balance = profile.get("class_balance")
    if balance:
        parts.append(
            Text("class balance: " + ", ".join(f"{k} {v}" for k, v in balance.items()), "bold")
        )
    for note in profile.get("notes", []):
        parts.append(Text(f"note: {note}", "cyan"))
    for warning in profile.get("warnings", []):
        parts.append(Text(f"warning: {warning}", "yellow"))
    console.print(Panel(Group(*parts), title="dataset profile", expand=False))


def run_json(run: RunRecord, state: str | None = None) -> dict[str, Any]:
    """A run as JSON; ``state`` (from ``Runs.state``) replaces the stored status when given.

    An interrupted run also carries ``resume``, the command that continues it.
    """
    status = state or run.status
    return {
        "id": run.id,
        "name": run.name,
        "experiment": run.experiment,
        "status": status,
        **({"resume": resume_command(run.id)} if status == "interrupted" else {}),
        "params": run.params,
        "summary": run.summary,
        "tags": run.tags,
        "dataset_version_id": run.dataset_version_id,
        "parent_run_id": run.parent_run_id,
        "created_by": run.created_by,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "duration_s": run.duration_s,
        "heartbeat_at": run.heartbeat_at.isoformat() if run.heartbeat_at else None,
        "artifacts": run.artifacts,
    }


STATUS_STYLE = {
    "running": "cyan",
    "finished": "green",
    "failed": "red",
    "killed": "yellow",
    "pruned": "magenta",
    "interrupted": "magenta",
}
