"""``mlcycle tune``: run or continue a study; ``tune show`` and ``tune list``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlcycle.cli._app import app, out, print_json, state
from mlcycle.cli._render import STATUS_STYLE
from mlcycle.cli._train import parse_sets

if TYPE_CHECKING:
    from mlcycle.tune import TrialEvent

tune_app = typer.Typer(
    help="Tune hyper-parameters: an Optuna study whose trials are runs.",
    invoke_without_command=True,
)
app.add_typer(tune_app, name="tune")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


class TrialBar:
    """``trial n/N``, the best value so far and how many were pruned, on stderr."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self._bar: Progress | None = None

    def __enter__(self) -> TrialBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, event: TrialEvent) -> None:
        if not self.show:
            return
        if self._bar is None:
            self._bar = Progress(
                TextColumn("[bold]trial"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(stderr=True),
            )
            self._task = self._bar.add_task("tune", total=event.n_trials, status="")
            self._bar.start()
        best = "-" if event.best is None else f"{event.best:.4f}"
        status = f"best {event.objective} {best} · {event.pruned} pruned"
        if event.failed:
            status += f" · {event.failed} failed"
        self._bar.update(self._task, completed=event.done, status=status)


@tune_app.callback()
def tune(
    ctx: typer.Context,
    data: Annotated[
        str | None,
        typer.Option("--data", help="NAME[@VERSION], or a source such as sklearn:digits."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="A model kind (overrides train.model.kind).")
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="Trials in all (tune.n_trials).")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Start no trial after this many seconds."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes sharing the study (tune.workers)."),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="local (processes here, the default) or ray: the workers as Ray tasks "
            "(RAY_ADDRESS, else a Ray on this machine).",
        ),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective",
            help="Validation metric(s) to optimise; several for a Pareto front "
            "(accuracy,latency_ms).",
        ),
    ] = None,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="tpe | random | cmaes | gp | grid | nsga2.")
    ] = None,
    pruner: Annotated[
        str | None,
        typer.Option("--pruner", help="auto | hyperband | successive_halving | median | none."),
    ] = None,
    target: Annotated[
        float | None, typer.Option("--target", help="Stop once a trial reaches this value.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="The sampler's seed.")] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The study's name; an existing study is continued."),
    ] = None,
    pick: Annotated[
        str | None,
        typer.Option(
            "--pick",
            help="Choose a point of the Pareto front: 'latency_ms where accuracy>=0.97'.",
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="Spec overrides for every trial: key=value (max_epochs=20)."),
    ] = None,
    as_json: JsonFlag = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run a study (or continue one): each trial trains a run; the best is evaluated on test."""
    if ctx.invoked_subcommand is not None:
        return
    from mlcycle.tune import tune as run_study

    with state(ctx).open() as project, TrialBar(not (quiet or as_json)) as bar:
        summary = run_study(
            project,
            data=data,
            model=model,
            overrides=parse_sets(sets or []),
            name=name,
            n_trials=trials,
            timeout_s=timeout,
            workers=workers,
            sampler=sampler,
            pruner=pruner,
            objective=objective,
            target=target,
            seed=seed,
            pick=pick,
            on_trial=bar,
            executor=executor,
        )
    if as_json:
        print_json(summary.to_dict())
        return
    _print_summary(summary.to_dict())


def _point_line(point: dict[str, Any]) -> str:
    values = ", ".join(f"{k} {v:.4g}" for k, v in point["values"].items())
    tests = ", ".join(
        f"{k} {v:.4f}"
        for k, v in (point.get("test") or {}).items()
        if k in ("accuracy", "rmse", "r2", "roc_auc", "f1_macro", "mae")
    )
    params = ", ".join(f"{k}={_short(v)}" for k, v in point["params"].items())
    line = f"trial {point['trial']} (run {str(point.get('run_id'))[:8]}): validation {values}"
    if tests:
        line += f"; test {tests}"
    return line + f"\n  {params}"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _print_summary(s: dict[str, Any]) -> None:
    t = s["trials"]
    out.print(
        f"study [bold]{s['name']}[/] on {s['dataset']}: {t['complete']} complete, "
        f"{t['pruned']} pruned, {t['failed']} failed; {s['epochs_trained']} epochs in "
        f"{s['elapsed_s']:.1f}s ({s['storage']} storage)"
    )
    if s.get("picked"):
        out.print("picked: " + _point_line(s["picked"]))
    elif s.get("best"):
        out.print("best: " + _point_line(s["best"]))
    for point in s.get("pareto") or []:
        out.print("front: " + _point_line(point))
    chosen = s.get("picked") or s.get("best")
    if chosen and chosen.get("run_id"):
        out.print(f"register it: mlcycle register {chosen['run_id']} --name NAME")
    if s.get("report"):
        out.print(f"report: {s['report']}")


@tune_app.command("show")
def show(
    ctx: typer.Context,
    study: Annotated[str, typer.Argument(help="The study's name (or its run id).")],
    as_json: JsonFlag = False,
) -> None:
    """A study's summary and its trials, each with its run and status."""
    from mlcycle.tune import study_run, trial_runs

    with state(ctx).open() as project:
        record = study_run(project, study)
        trials = trial_runs(project, record.id)
        base = set(record.params.get("overrides", {})) | {"train.early_stopping.metric"}
        shown = project.runs.state(record)
        rows = [
            {
                "trial": int(r.tags["trial"]),
                "run_id": r.id,
                "status": project.runs.state(r),
                "epochs": r.summary.get("epochs_run"),
                "val": r.summary.get("val", {}),
                "overrides": r.params.get("overrides", {}),
            }
            for r in trials
        ]
        if as_json:
            print_json(
                {
                    "study": record.name,
                    "run_id": record.id,
                    "status": shown,
                    "summary": record.summary,
                    "trials": rows,
                }
            )
            return
        out.print(f"study [bold]{record.name}[/] (run {record.id[:8]}, {shown})")
        if record.summary.get("trials"):
            _print_summary(record.summary)
        table = Table("trial", "run", "status", "epochs", "validation", "parameters")
        for row in rows:
            style = STATUS_STYLE.get(row["status"], "")
            val = ", ".join(f"{k} {v:.4f}" for k, v in list(row["val"].items())[:2])
            params = ", ".join(
                f"{k.removeprefix('train.')}={_short(v)}"
                for k, v in row["overrides"].items()
                if k not in base
            )
            table.add_row(
                str(row["trial"]),
                row["run_id"][:8],
                f"[{style}]{row['status']}[/]",
                str(row["epochs"] or "-"),
                val,
                params,
            )
        out.print(table)


@tune_app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every study of the project, newest first."""
    from mlcycle.tune import STUDY_EXPERIMENT

    with state(ctx).open() as project:
        records = project.runs.list(experiment=STUDY_EXPERIMENT, limit=1000)
        rows = []
        for r in records:
            s = r.summary
            best = s.get("best") or {}
            rows.append(
                {
                    "study": r.name,
                    "run_id": r.id,
                    "status": project.runs.state(r),
                    "dataset": r.params.get("dataset"),
                    "objectives": [o[0] for o in r.params.get("objectives", [])],
                    "trials": s.get("trials", {}),
                    "best": best.get("values"),
                    "best_run": best.get("run_id"),
                }
            )
        if as_json:
            print_json(rows)
            return
        if not rows:
            out.print("no studies yet: mlcycle tune --data NAME")
            return
        table = Table("study", "status", "dataset", "objectives", "complete", "pruned", "best")
        for row in rows:
            t = row["trials"]
            best = ", ".join(f"{k} {v:.4f}" for k, v in (row["best"] or {}).items())
            table.add_row(
                row["study"],
                f"[{STATUS_STYLE.get(row['status'], '')}]{row['status']}[/]",
                str(row["dataset"]),
                ",".join(row["objectives"]),
                str(t.get("complete", "-")),
                str(t.get("pruned", "-")),
                best or "-",
            )
        out.print(table)
