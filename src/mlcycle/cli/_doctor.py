"""``mlcycle doctor``: which stores and executor this project resolves to, and whether they answer."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from mlcycle.cli._app import app, out, print_json, state


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check the project's set-up here: spec, metadata store, artifact store, executor.

    One line each: what it resolves to, from where (environment variable,
    mlcycle.yaml, default), and whether it answers. Exit 1 if one does not.
    """
    from mlcycle.workflow import diagnose

    findings = diagnose(state(ctx).project_dir)
    if as_json:
        print_json([f.to_dict() for f in findings])
    else:
        for f in findings:
            mark = Text("ok  ", style="green") if f.ok else Text("FAIL", style="bold red")
            origin = f" ({f.source})" if f.source else ""
            line = mark + Text(f" {f.part:<15} {f.target}{origin}: {f.detail}")
            out.print(line, soft_wrap=True)
    if not all(f.ok for f in findings):
        raise typer.Exit(1)
