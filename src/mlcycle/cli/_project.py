"""``mlcycle init`` and ``mlcycle demo``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from mlcycle.cli._app import app, out
from mlcycle.cli._render import render_profile
from mlcycle.project import SPEC_FILE, Project


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to make a project of.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder's).")] = None,
) -> None:
    """Create a project: a commented mlcycle.yaml and a .mlcycle/ folder."""
    with Project.init(directory, name=name) as project:
        out.print(
            f"[green]created[/] project [bold]{project.spec.project.name}[/] in {project.root}"
        )
        out.print(f"edit {project.root / SPEC_FILE}, then: mlcycle data add sklearn:breast_cancer")


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Keep the demo project here instead of a temporary folder."),
    ] = None,
) -> None:
    """Run the lifecycle on a bundled dataset in a throw-away project."""
    root = directory or Path(tempfile.mkdtemp(prefix="mlcycle-demo-"))
    try:
        with Project.init(root, name="demo") as project:
            out.rule("[bold]mlcycle demo")
            out.print(f"project: {project.root} (store: {project.store.backend})")
            out.print("1. version a bundled dataset: sklearn:breast_cancer")
            added = project.datasets.add("sklearn:breast_cancer")
            again = project.datasets.add("sklearn:breast_cancer")
            out.print(
                f"   {added.version.ref}; adding it again gives "
                f"{again.version.ref} ({'new' if again.created else 'the same version'})"
            )
            counts = added.split.counts
            out.print(
                f"   split (stratified, seed 0): train {counts['train']}, "
                f"validation {counts['validation']}, test {counts['test']}"
            )
            render_profile(out, added.version)
    finally:
        if directory is None:
            shutil.rmtree(root, ignore_errors=True)
    out.print("[green]demo finished[/]")
