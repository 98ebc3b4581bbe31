"""``mlcycle runs``: what was run, with which parameters, and how it went."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from mlcycle._runs import resume_command
from mlcycle.cli._app import app, out, print_json, state
from mlcycle.cli._render import STATUS_STYLE, run_json
from mlcycle.errors import SpecError
from mlcycle.store import RunRecord, check_name

runs_app = typer.Typer(
    help="List, filter, compare, tag and delete tracked runs.", no_args_is_help=True
)
app.add_typer(runs_app, name="runs")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def parse_tags(pairs: list[str], option: str = "--tag") -> dict[str, str]:
    """``key=value`` pairs as tags; the value is kept as written (a string)."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"{option} {pair!r}: expected KEY=VALUE, e.g. {option} team=fraud")
        tags[check_name(key.strip(), "tag key")] = value
    return tags


Statuses = Literal["running", "finished", "failed", "killed", "pruned", "interrupted"]
# How many runs --where/--sort look through before the newest --limit are shown.
SCAN_LIMIT = 10_000


@runs_app.command("list")
def list_(
    ctx: typer.Context,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    status: Annotated[
        Statuses | None,
        typer.Option(help="Only runs in this state (interrupted: running, heartbeat stale)."),
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Only runs with this tag: KEY=VALUE (repeatable: all of them)."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Only runs trained on NAME (any version) or NAME@VERSION.")
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            help="Only runs whose metric passes: 'test.accuracy>0.9', 'val_loss<=0.2' "
            "(test.NAME or a logged metric's last value; > >= < <= == !=; repeatable)."
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(help="Sort by this metric (test.NAME or a logged one), highest first."),
    ] = None,
    ascending: Annotated[bool, typer.Option("--asc", help="With --sort: lowest first.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the run ids, one per line (for scripts).")
    ] = False,
) -> None:
    """List runs, newest first. ``RUN=$(mlcycle runs list -q | head -1)``: the newest run.

    Experiment, status, tags and dataset are filtered by the store; ``--where``
    and ``--sort`` then look at the runs' results.
    """
    from mlcycle._run_query import select_runs

    wanted_tags = parse_tags(tags or [])
    with state(ctx).open() as project:
        by_result = bool(where or sort or status in ("running", "interrupted"))
        runs = project.runs.list(
            experiment=experiment,
            status="running" if status == "interrupted" else status,
            tags=wanted_tags,
            dataset=dataset,
            limit=SCAN_LIMIT if by_result else limit,
        )
        if status is not None:
            runs = [r for r in runs if project.runs.state(r) == status]
        runs = select_runs(project, runs, where=where or (), sort=sort, ascending=ascending)
        runs = runs[:limit]
        if quiet:
            for r in runs:
                print(r.id)
            return
        states = [project.runs.state(r) for r in runs]
        if as_json:
            print_json([run_json(r, shown) for r, shown in zip(runs, states, strict=True)])
            return
        if not runs:
            filtered = experiment or status or tags or dataset or where
            out.print("no runs match" if filtered else "no runs yet")
            return
        metrics = _headline_columns(runs, sort)
        table = Table("id", "name", "status", "experiment", "started", "duration", *metrics)
        for r, shown in zip(runs, states, strict=True):
            duration = f"{r.duration_s:.1f}s" if r.duration_s is not None else "-"
            started = f"{r.started_at:%Y-%m-%d %H:%M:%S}" if r.started_at else "-"
            style = STATUS_STYLE.get(shown, "")
            test = r.summary.get("test") or {}
            table.add_row(
                r.id[:8],
                r.name,
                f"[{style}]{shown}[/]",
                r.experiment,
                started,
                duration,
                *(_fmt(test.get(m.removeprefix("test."))) for m in metrics),
            )
        out.print(table)
        for r, shown in zip(runs, states, strict=True):
            if shown == "interrupted":
                out.print(_interrupted(r))


# At most this many test-metric columns in the runs table (the ones the runs report first).
HEADLINE_COLUMNS = 3


def _headline_columns(runs: list[RunRecord], sort: str | None) -> list[str]:
    """The test metrics the table shows: the sorted-by one first, then the runs' headline ones.

    A run's headline metrics are those its evaluation gave intervals for (``test_ci``).
    """
    names: list[str] = [sort] if sort and sort.startswith("test.") else []
    for r in runs:
        for key in r.summary.get("test_ci") or r.summary.get("test") or {}:
            if f"test.{key}" not in names and len(names) < HEADLINE_COLUMNS:
                names.append(f"test.{key}")
    return names


@runs_app.command("tag")
def tag(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id, or a unique prefix of 6+ characters.")],
    pairs: Annotated[list[str], typer.Argument(help="Tags to set: KEY=VALUE ...")],
    as_json: JsonFlag = False,
) -> None:
    """Set tags on a run (a tag it has already gets the new value)."""
    tags = parse_tags(pairs, option="tag")
    with state(ctx).open() as project:
        run = project.runs.tag(run_id, tags)
        if as_json:
            print_json({"id": run.id, "tags": run.tags})
            return
        shown = ", ".join(f"{k}={v}" for k, v in run.tags.items())
        out.print(f"run {run.id[:8]} tags: {shown}")


@runs_app.command("delete")
def delete(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id, or a unique prefix of 6+ characters.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a run: its metadata, report and the artifacts no other record uses.

    Refused while a registered model version was made from the run.
    """
    with state(ctx).open() as project:
        run = project.runs.get(run_id)
        if not yes and not typer.confirm(f"delete run {run.id[:8]} ({run.name})?"):
            raise typer.Exit(1)
        done = project.runs.delete(run.id)
        if as_json:
            print_json(done.to_dict())
            return
        out.print(
            f"deleted run {done.run_id[:8]} ({done.name}): {done.artifacts_deleted} artifacts "
            f"removed, {done.artifacts_kept} kept (used elsewhere)"
        )


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
