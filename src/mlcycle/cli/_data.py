"""``mlcycle data``: version datasets and look at them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlcycle.cli._app import app, err, out, print_json, state
from mlcycle.cli._render import render_profile, version_json

data_app = typer.Typer(
    help="Version datasets and inspect their schema and profile.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@data_app.command("add")
def add(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="sklearn:NAME, a CSV/Parquet file or folder, or a dataset named in the spec."
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="Dataset name (default: from the source).")
    ] = None,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Version a dataset: the same content twice gives the same version."""
    with state(ctx).open() as project:
        with err.status(f"reading and profiling {source}…"):
            added = project.datasets.add(source, name=name, target=target)
        version = added.version
        if as_json:
            print_json(
                {**version_json(version), "created": added.created, "split": added.split.counts}
            )
            return
        verb = "added" if added.created else "unchanged, already"
        out.print(
            f"[green]{verb}[/] [bold]{version.ref}[/] ({version.n_rows} rows, "
            f"fingerprint {version.fingerprint[:12]}…)"
        )
        counts = added.split.counts
        out.print(
            f"split: train {counts['train']}, validation {counts['validation']}, test {counts['test']}"
        )
        for warning in added.warnings:
            out.print(f"[yellow]warning:[/] {warning}")


@data_app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List datasets and their latest versions."""
    with state(ctx).open() as project:
        datasets = project.datasets.list()
        if as_json:
            print_json(
                [
                    {
                        "name": d.name,
                        "versions": d.versions,
                        "latest": d.latest,
                        "created_at": d.created_at.isoformat(),
                    }
                    for d in datasets
                ]
            )
            return
        if not datasets:
            out.print("no datasets yet: mlcycle data add sklearn:breast_cancer")
            return
        table = Table("name", "versions", "latest", "rows", "task", "created")
        for d in datasets:
            latest = project.datasets.get(d.name)
            table.add_row(
                d.name,
                str(d.versions),
                f"@{d.latest}",
                str(latest.n_rows),
                str(latest.profile.get("task") or "-"),
                f"{d.created_at:%Y-%m-%d %H:%M}",
            )
        out.print(table)


@data_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: latest).")],
    as_json: JsonFlag = False,
) -> None:
    """Show a version's schema and profile."""
    with state(ctx).open() as project:
        version = project.datasets.get(ref)
        if as_json:
            print_json(version_json(version))
            return
        render_profile(out, version)
