"""The root command, its shared options, and the way errors reach the user."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from mlcycle.errors import MlcycleError
from mlcycle.project import Project, find_project_root

app = typer.Typer(
    name="mlcycle",
    help="Train, evaluate, register, deploy, monitor and retrain ML models from one project.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@dataclass
class State:
    project_dir: Path | None = None

    def open(self) -> Project:
        root = find_project_root(self.project_dir, hint="run 'mlcycle init' or pass --project DIR")
        return Project.open(root)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def print_error(message: str) -> None:
    """One ``error:`` line on stderr, never wrapped (a script may grep it, a log may be wide)."""
    err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else on it."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _version(value: bool) -> None:
    if value:
        from mlcycle import __version__

        out.print(f"mlcycle {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    project: Annotated[
        Path | None,
        typer.Option(
            "--project",
            "-p",
            help="Project folder (default: the nearest folder with mlcycle.yaml, upwards).",
            file_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = State(project_dir=project)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlcycle`` script: errors become one red line and exit code 1."""
    try:
        app(args=argv, prog_name="mlcycle")
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except MlcycleError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print_error(line)
        return 1
    return 0
