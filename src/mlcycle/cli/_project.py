"""``mlcycle init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlcycle.cli._app import app, out
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
