"""``mlcycle monitor``: is the model still seeing what it was trained on?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlcycle.cli._app import app, out, print_json, state

DRIFT_EXIT = 3


@app.command()
def monitor(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS (or NAME@VERSION) to check.")],
    current: Annotated[
        Path | None, typer.Option("--current", help="A CSV/Parquet file of current rows.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="The prediction log since: 30m, 1h, 2d.")
    ] = None,
    last: Annotated[
        int | None, typer.Option("--last", min=1, help="The last N logged rows.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML report to this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Test current data for drift; exit code 3 when drift or an alert is found."""
    from mlcycle.monitor import monitor as run_monitor
    from mlcycle.monitor import parse_since

    with state(ctx).open() as project:
        result = run_monitor(
            project,
            ref,
            current=current,
            since=parse_since(since, what="--since") if since else None,
            last=last,
            html=html,
        )
    if as_json:
        print_json(result.to_dict())
    else:
        table = Table("column", "test", "statistic", "p-value", "threshold", "drift")
        for c in result.features.columns:
            p = "-" if c.p_value is None else f"{c.p_value:.3g}"
            flag = "[red]yes[/]" if c.drift else "no"
            table.add_row(c.column, c.test, f"{c.statistic:.4g}", p, f"{c.threshold:g}", flag)
        out.print(table)
        verdict = "[red]drift[/]" if result.features.drift else "[green]no dataset drift[/]"
        out.print(
            f"{result.model}: {verdict}; {result.features.share_drifted:.0%} of inputs drifted; "
            f"prediction drift: {'yes' if result.prediction.drift else 'no'}"
        )
        perf = result.performance
        if perf is not None and perf.value is not None:
            out.print(f"performance: {perf.metric} {perf.value:.4f} on {perf.n} labelled rows")
        if result.estimated and "accuracy" in result.estimated:
            e = result.estimated["accuracy"]
            out.print(f"estimated accuracy (CBPE, no labels): {e['value']:.4f}")
        if result.ood is not None:
            out.print(f"out-of-distribution rows: {result.ood['share']:.1%}")
        for key, fair in result.fairness.items():
            for name, check in fair.checks.items():
                ref = "" if check.reference is None else f", reference {check.reference:.3f}"
                out.print(
                    f"fairness {escape(key)}: {name.replace('_', ' ')} {getattr(fair, name):.3f} "
                    f"({check.confidence:.0%} interval {check.low:.3f} to {check.high:.3f}{ref}); "
                    f"{check.rule} rule: {'[red]alert[/]' if check.alert else 'no alert'}"
                )
            for note in fair.notes:
                out.print(f"  [dim]{escape(note)}[/]")
        for alert in result.alerts:
            out.print(f"[red]alert:[/] {alert}")
        if result.html is not None:
            out.print(f"report: {result.html}")
    if not result.healthy:
        raise typer.Exit(DRIFT_EXIT)
