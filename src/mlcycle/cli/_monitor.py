"""``mlcycle monitor``: is the model still seeing what it was trained on?"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from mlcycle.cli._app import app, out, print_json, state

if TYPE_CHECKING:
    from mlcycle.monitor import ColumnDrift, DriftReport, MonitorResult

DRIFT_EXIT = 3
_CORRECTIONS = {"benjamini-hochberg": "Benjamini-Hochberg", "bonferroni": "Bonferroni"}


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _drift(column: ColumnDrift) -> str:
    if column.drift is None:
        return "[yellow]no verdict[/]"
    return "[red]yes[/]" if column.drift else "no"


def _verdict(report: DriftReport | None) -> str:
    if report is None:
        return "-"
    return "no verdict" if report.drift is None else ("yes" if report.drift else "no")


def _window(result: MonitorResult) -> str:
    window = result.window
    where = str(window.get("source", ""))
    if window.get("log_sources"):
        where += f" ({', '.join(window['log_sources'])})"
    return f"window: {where}, {window.get('rows', 0)} rows, {window.get('labelled', 0)} labelled"


def _show(result: MonitorResult) -> None:
    out.print(_window(result), soft_wrap=True)
    features = result.features
    corrected = features.multiple_testing != "none" and any(
        c.p_value is not None for c in features.columns
    )
    head = ["column", "test", "statistic", "p-value"]
    head += ["adjusted p"] if corrected else []
    table = Table(*head, "threshold", "drift")
    for c in features.columns:
        cells = [c.column, c.test, f"{c.statistic:.4g}", _p(c.p_value)]
        cells += [_p(c.adjusted_p_value)] if corrected else []
        table.add_row(*cells, f"{c.threshold:g}", _drift(c))
    out.print(table)
    tested = sum(c.p_value is not None for c in features.columns)
    if corrected:
        method = _CORRECTIONS.get(features.multiple_testing, features.multiple_testing)
        out.print(
            f"adjusted p: {method} over {tested} p-values (monitor.multiple_testing); "
            "drift when adjusted p <= threshold, or statistic >= threshold for distances"
        )
    elif tested:
        out.print("p-values not adjusted for multiple testing (monitor.multiple_testing: none)")
    if features.drift is None:
        verdict = "[yellow]no verdict on dataset drift[/]"
    else:
        verdict = "[red]drift[/]" if features.drift else "[green]no dataset drift[/]"
    out.print(
        f"{result.model}: {verdict}; {features.share_drifted:.0%} of inputs drifted; "
        f"prediction drift: {_verdict(result.prediction)}"
    )
    perf = result.performance
    if perf is not None and perf.value is not None:
        out.print(f"performance: {perf.metric} {perf.value:.4f} on {perf.n} labelled rows")
    if result.estimated and "accuracy" in result.estimated:
        e = result.estimated["accuracy"]
        out.print(f"estimated accuracy (CBPE, no labels): {e['value']:.4f}")
    if result.ood is not None:
        ood = result.ood
        undecided = " (no verdict)" if ood.get("alert") is None else ""
        out.print(f"out-of-distribution rows: {ood['share']:.1%} of {ood['rows']}{undecided}")
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
    for note in result.report.get("notes", []):
        out.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    for alert in result.alerts:
        out.print(f"[red]alert:[/] {escape(str(alert))}", soft_wrap=True)
    if result.html is not None:
        out.print(f"report: {result.html}")


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
    source: Annotated[
        Literal["serve", "batch", "all"],
        typer.Option(
            "--source",
            help="The logged rows to check: served, batch-scored, or all of them "
            "(never shadow or failed requests).",
        ),
    ] = "all",
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
            source=source,
        )
    if as_json:
        print_json(result.to_dict())
    else:
        _show(result)
    if not result.healthy:
        raise typer.Exit(DRIFT_EXIT)
