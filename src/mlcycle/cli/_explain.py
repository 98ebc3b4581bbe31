"""``mlcycle explain``: which columns a version relies on, and why it answered what it did."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mlcycle.cli._app import app, out, print_json, state
from mlcycle.errors import SpecError

if TYPE_CHECKING:
    from mlcycle.audit import Explanation, ImportanceResult

# Columns shown per row in the terminal (all of them are in --json and the report).
_SHOWN = 8


@app.command()
def explain(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS.")],
    rows: Annotated[
        Path | None,
        typer.Option("--rows", help="CSV or Parquet of rows to explain (the model's columns)."),
    ] = None,
    row_index: Annotated[
        list[int] | None,
        typer.Option("--row-index", help="Explain this row of the test split (repeatable)."),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="ig (Integrated Gradients, PyTorch graph) | shap (SHAP permutation, ONNX "
            "graph) | auto: ig where the version has PyTorch weights, else shap (a gbm's trees).",
        ),
    ] = "auto",
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="Metric of the permutation importance (default: headline)."),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Shuffles per column for the importance.")
    ] = 5,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            help="IG: Gauss-Legendre nodes (default: refined per row to a 1e-3 completeness "
            "error); SHAP: permutations.",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="Class whose probability to attribute (default: predicted)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of shuffles and samples.")] = 0,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write an offline HTML report here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Permutation importance of every column, and attributions of some rows."""
    from mlcycle.audit import explain as attribute
    from mlcycle.audit import importance

    if rows is not None and row_index:
        raise SpecError("--rows and --row-index: give one or the other, not both")
    chosen: Any = str(rows) if rows is not None else (list(row_index) if row_index else None)
    with state(ctx).open() as project:
        global_ = importance(project, ref, metric=metric, repeats=repeats, seed=seed)
        local = attribute(
            project, ref, chosen, method=method, steps=steps, target=target, seed=seed
        )
    if report is not None:
        _write_report(report, global_, local)
    if as_json:
        print_json({"importance": global_.to_dict(), "explanation": local.to_dict()})
        return
    if method == "auto" and local.method == "shap":
        out.print(
            f"Integrated Gradients needs PyTorch weights, which {global_.model} has not "
            "(a gbm's trees, a compressed variant): SHAP's permutation explainer "
            "on its ONNX graph instead"
        )
    _print(global_, local)
    if report is not None:
        out.print(f"report: {report}")


def _print(global_: ImportanceResult, local: Explanation) -> None:
    confidence = f"{1 - global_.alpha:.0%}"
    view = Table(
        "column",
        "kind",
        f"{global_.metric} drop",
        f"{confidence} low",
        "high",
        title=f"permutation importance, {global_.model}, test split ({global_.rows} rows, "
        f"{global_.metric} {global_.score:.4f})",
    )
    for c in global_.columns:
        view.add_row(
            c.column,
            c.kind,
            f"{c.importance:+.4f}",
            "-" if c.low is None else f"{c.low:+.4f}",
            "-" if c.high is None else f"{c.high:+.4f}",
        )
    out.print(view)
    what = "P(target)" if local.quantity == "probability" else "value"
    out.print(
        f"attributions of {what}, {local.method}"
        + (
            f" ({local.steps} Gauss-Legendre nodes"
            + (f", refined up to {local.max_steps} per row" if local.adaptive else "")
            + ")"
            if local.method == "ig"
            else f" ({local.steps} permutations, {local.background} background rows)"
        )
    )
    for i, r in enumerate(local.rows):
        name = f"row {r.index}" if r.index is not None else f"row {i} (given)"
        relative = "-" if r.relative_error is None else f"{r.relative_error:.1e}"
        out.print(
            f"[bold]{name}[/]: {r.target}  f(x) {r.output:.4f}  reference {r.reference:.4f}  "
            f"completeness error {r.error:+.1e} (relative {relative})"
        )
        ranked = sorted(r.attributions.items(), key=lambda kv: -abs(kv[1]))
        shown = ", ".join(f"{c} {v:+.4f}" for c, v in ranked[:_SHOWN])
        more = f" (+{len(ranked) - _SHOWN} more)" if len(ranked) > _SHOWN else ""
        out.print(f"  {shown}{more}")


def _write_report(path: Path, global_: ImportanceResult, local: Explanation) -> None:
    from mlcycle._html import esc, html_page, write_page
    from mlcycle.audit import html_sections
    from mlcycle.evaluate._figures import Figures

    figures = Figures()
    sections = html_sections(global_, figures) + html_sections(local, figures)
    subtitle = f"<p class='note'>{esc(global_.model)} · dataset {esc(global_.dataset)}</p>"
    write_page(path, html_page(f"Explanations of {global_.model}", subtitle, sections))
