"""``mlcycle runs``: what was run, with which parameters, and how it went."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from mlcycle._runs import resume_command
from mlcycle.cli._app import app, out, print_json, state
from mlcycle.cli._render import STATUS_STYLE, run_json
from mlcycle.store import RunRecord

runs_app = typer.Typer(help="List and inspect tracked runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@runs_app.command("list")
def list_(
    ctx: typer.Context,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the run ids, one per line (for scripts).")
    ] = False,
) -> None:
    """List runs, newest first. ``RUN=$(mlcycle runs list -q | head -1)``: the newest run."""
    with state(ctx).open() as project:
        runs = project.runs.list(experiment=experiment, limit=limit)
        if quiet:
            for r in runs:
                print(r.id)
            return
        states = [project.runs.state(r) for r in runs]
        if as_json:
            print_json([run_json(r, shown) for r, shown in zip(runs, states, strict=True)])
            return
        if not runs:
            out.print("no runs yet")
            return
        table = Table("id", "name", "status", "experiment", "started", "duration")
        for r, shown in zip(runs, states, strict=True):
            duration = f"{r.duration_s:.1f}s" if r.duration_s is not None else "-"
            started = f"{r.started_at:%Y-%m-%d %H:%M:%S}" if r.started_at else "-"
            style = STATUS_STYLE.get(shown, "")
            table.add_row(r.id[:8], r.name, f"[{style}]{shown}[/]", r.experiment, started, duration)
        out.print(table)
        for r, shown in zip(runs, states, strict=True):
            if shown == "interrupted":
                out.print(_interrupted(r))


@runs_app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id, or a unique prefix of 6+ characters.")],
    as_json: JsonFlag = False,
) -> None:
    """Show a run: parameters, tags, summary and its metrics' last values."""
    with state(ctx).open() as project:
        run = project.runs.get(run_id)
        metrics = project.runs.metrics(run.id)
        last: dict[str, tuple[int, float]] = {}
        for point in metrics:
            last[point.key] = (point.step, point.value)
        shown = project.runs.state(run)
        if as_json:
            history: dict[str, list[dict[str, float]]] = {}
            for point in metrics:
                history.setdefault(point.key, []).append({"step": point.step, "value": point.value})
            print_json({**run_json(run, shown), "metrics": history})
            return
        style = STATUS_STYLE.get(shown, "")
        out.print(f"[bold]{run.name}[/] {run.id}  [{style}]{shown}[/]  experiment {run.experiment}")
        if shown == "interrupted":
            out.print(_interrupted(run))
        for title, mapping in (
            ("params", run.params),
            ("tags", run.tags),
            ("summary", run.summary),
        ):
            if mapping:
                table = Table(title=title, box=None, show_header=False, title_justify="left")
                for key, value in mapping.items():
                    table.add_row(str(key), str(value))
                out.print(table)
        if last:
            table = Table("metric", "last step", "value", title="metrics", title_justify="left")
            for key, (step, value) in last.items():
                table.add_row(key, str(step), f"{value:.6g}")
            out.print(table)


def _interrupted(run: RunRecord) -> str:
    """Why a run shows as interrupted, and the command that continues it."""
    assert run.heartbeat_at is not None
    age = (datetime.now(UTC) - run.heartbeat_at).total_seconds()
    return (
        f"[magenta]interrupted:[/] run {run.id[:8]} stopped without a word "
        f"(no heartbeat for {age:.0f} s); continue it with: {resume_command(run.id)}"
    )


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters as dotted paths: ``{"train": {"model": {"hidden": ..}}}`` ->
    ``{"train.model.hidden": ..}``. Lists stay values; an empty mapping is a value too.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{path}.")
        else:
            flat[path] = value
    return flat


# Parameters left out of the comparison: the dataset has its own row, and the
# overrides repeat, by their dotted names, what the train.* paths already hold.
_NOT_COMPARED = ("dataset", "overrides")


@runs_app.command("compare")
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes).")],
    show_all: Annotated[
        bool, typer.Option("--all", help="Also the parameters every run has the same value of.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Compare runs side by side: data, every parameter that differs, training facts, test metrics.

    Nested parameters (model, early stopping, schedule, evaluation, environment)
    are compared by their dotted paths, ``train.model.hidden``.
    """
    with state(ctx).open() as project:
        runs = [project.runs.get(r) for r in run_ids]
        rows: dict[str, list[object]] = {}

        def put(label: str, values: list[object]) -> None:
            if any(v is not None for v in values):
                rows[label] = values

        put("name", [r.name for r in runs])
        put("status", [project.runs.state(r) for r in runs])
        put("dataset", [r.params.get("dataset") for r in runs])
        params = [
            flatten({k: v for k, v in r.params.items() if k not in _NOT_COMPARED}) for r in runs
        ]
        keys: list[str] = []
        for flat in params:
            keys += [k for k in flat if k not in keys]
        equal = 0
        for key in keys:
            values = [flat.get(key) for flat in params]
            if len(runs) > 1 and all(v == values[0] for v in values) and not show_all:
                equal += 1
                continue
            put(key, values)
        for key in ("best_epoch", "epochs_run", "train_seconds", "samples_per_s", "parameters"):
            put(key, [r.summary.get(key) for r in runs])
        metric_keys: list[str] = []
        for r in runs:
            for key in r.summary.get("test", {}):
                if key not in metric_keys:
                    metric_keys.append(key)
        for key in metric_keys:
            put(f"test.{key}", [r.summary.get("test", {}).get(key) for r in runs])
        if as_json:
            print_json({"runs": [r.id for r in runs], "rows": rows, "equal_parameters": equal})
            return
        table = Table("", *[r.id[:8] for r in runs])
        for label, values in rows.items():
            cells = [_fmt(v) for v in values]
            if len(set(cells)) > 1:
                cells = [f"[bold]{c}[/]" for c in cells]
            table.add_row(label, *cells)
        out.print(table)
        if equal:
            out.print(f"{equal} parameters are equal in every run (--all shows them)")
