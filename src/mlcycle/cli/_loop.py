"""``mlcycle loop``: keep a model fresh; ``mlcycle loop status``: where it stands and why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlcycle.cli._app import app, out, print_error, print_json, state

loop_app = typer.Typer(
    help="The closed loop: monitor, retrain, gate, roll out, promote or roll back.",
    invoke_without_command=True,
)
app.add_typer(loop_app, name="loop")

ModelOption = Annotated[
    str | None, typer.Option("--model", help="The model (default: loop.model, or the only one).")
]


@loop_app.callback()
def loop(
    ctx: typer.Context,
    model: ModelOption = None,
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit (for cron).")] = False,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval", min=0.1, help="Seconds between ticks (default: loop.interval_s)."
        ),
    ] = None,
    max_ticks: Annotated[
        int | None, typer.Option("--max-ticks", min=1, help="Stop after N ticks.")
    ] = None,
) -> None:
    """Run the loop: every tick checks the champion and moves a retraining along.

    A tick that fails is recorded (see ``loop status``) and the loop backs off
    and goes on; with ``--once`` the error is the exit status (1).
    """
    if ctx.invoked_subcommand is not None:
        return
    from mlcycle.loop import TickError, run_loop

    def show(result: object) -> None:
        from mlcycle.loop import TickResult

        assert isinstance(result, TickResult)
        for step in result.steps:
            out.print(f"[bold]{result.model}[/] {step}")
        out.print(f"[dim]{result.model}: {result.state.phase}, cycle {result.state.cycle}[/]")

    def failed(error: TickError) -> None:
        k, wait = error.error["in_a_row"], error.retry_in_s
        print_error(f"{error} ({k} in a row; retrying in {wait:g} s)")

    with state(ctx).open() as project:
        run_loop(
            project,
            model,
            once=once,
            interval_s=interval,
            max_ticks=max_ticks,
            on_tick=show,
            on_error=failed,
        )


@loop_app.command("status")
def status(
    ctx: typer.Context,
    model: ModelOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Decisions to show.")] = 15,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the loop's story (timeline, decisions) here."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The loop's current state, the champion and challenger, and the last decisions."""
    from mlcycle.loop import history, loop_model, read_state, read_traffic, render_story
    from mlcycle.store import promotion_hold

    with state(ctx).open() as project:
        name = loop_model(project, model)
        current = read_state(project.store, name)
        traffic = read_traffic(project.store, name)
        events = [e for e in history(project.store, name, limit * 4) if e.action != "loop.checked"]
        trained = next(
            (e for e in history(project.store, name, 500) if e.action == "loop.data"), None
        )
        retuned = next(
            (e for e in history(project.store, name, 500) if e.action == "loop.retuned"), None
        )
        events = events[:limit]
        aliases = {
            alias: v.version
            for v in project.store.registry.list_versions(name)
            for alias in v.aliases
        }
        story = render_story(project, name, html) if html is not None else None
        hold = promotion_hold(project.store, name)
    if as_json:
        print_json(
            {
                "model": name,
                "state": current.to_dict(),
                "aliases": aliases,
                "traffic": traffic.__dict__,
                "story": None if story is None else str(story),
                "errors": {"in_a_row": current.errors, "last": current.last_error},
                "promotions_held": None
                if hold is None
                else {"by": hold.actor, "at": hold.at.isoformat(), "reason": hold.reason},
                "decisions": [
                    {"at": e.at.isoformat(), "action": e.action, "reason": e.reason} for e in events
                ],
            }
        )
        return
    out.print(
        f"[bold]{name}[/]: {current.phase} (cycle {current.cycle}); "
        + ", ".join(f"@{a} = {v}" for a, v in sorted(aliases.items()))
    )
    if traffic.mode != "off":
        out.print(f"traffic: {traffic.mode} {traffic.percent:g}% to version {traffic.version}")
    if trained is not None:
        data = trained.details.get("data") or {}
        out.print(
            f"last challenger data (cycle {trained.details.get('cycle')}): "
            f"{data.get('train_ref')}, {data.get('mode')}: {data.get('why')}"
        )
    if retuned is not None:
        study = retuned.details.get("study")
        out.print(
            f"last study (cycle {retuned.details.get('cycle')}): {study}, "
            f"`mlcycle tune show {study}` for its trials and report"
        )
    if hold is not None:
        out.print(
            f"[yellow]promotions held[/] by {hold.actor} since {hold.at:%Y-%m-%d %H:%M:%S}: "
            f"{hold.reason} (`mlcycle loop release` lets them go on)",
            soft_wrap=True,
        )
    if current.improving:
        out.print("keeping improving: retrains as labels accumulate while challengers win")
    error = current.last_error
    if error is not None:
        where = f"{error.get('phase')} ({error.get('step')})"
        if current.errors:
            out.print(
                f"[red]failing:[/] {current.errors} tick(s) in a row, the last at "
                f"{error.get('at')} in {where}: {error.get('message')}; "
                f"retrying every {error.get('retry_in_s', 0):g} s",
                soft_wrap=True,
            )
        else:
            out.print(
                f"last error (recovered since): {error.get('at')} in {where}: "
                f"{error.get('message')}",
                soft_wrap=True,
            )
    table = Table("when", "decision", "why")
    for e in events:
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.action.removeprefix("loop."), e.reason or "")
    out.print(table)
    if story is not None:
        out.print(f"story: {story}")


ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]


@loop_app.command("hold")
def hold(ctx: typer.Context, reason: ReasonOption, model: ModelOption = None) -> None:
    """Hold the loop's promotions: a challenger waits before the gate, a rollout at its step."""
    _hold(ctx, model, reason, held=True)


@loop_app.command("release")
def release(ctx: typer.Context, reason: ReasonOption, model: ModelOption = None) -> None:
    """Let the loop's promotions go on after ``mlcycle loop hold``."""
    _hold(ctx, model, reason, held=False)


def _hold(ctx: typer.Context, model: str | None, reason: str, *, held: bool) -> None:
    from mlcycle.loop import loop_model
    from mlcycle.store import hold_promotion

    with state(ctx).open() as project:
        name = loop_model(project, model)
        hold_promotion(project.store, name, held=held, actor=project.actor, reason=reason)
    if held:
        out.print(f"promotions of [bold]{name}[/] held: {reason}")
    else:
        out.print(f"promotions of [bold]{name}[/] go on: {reason}")
