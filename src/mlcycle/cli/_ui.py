"""``mlcycle ui``: the dashboard of a project, in the browser."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from mlcycle.cli._app import app, out, state


def ui_command(root: Path) -> str:
    """The command that opens the dashboard of the project at ``root``."""
    return f"mlcycle --project {shlex.quote(str(root))} ui"


@app.command()
def ui(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Bind address; loopback unless told otherwise.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 5000,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="Another Host name the browser uses (repeatable; '*': any name)."),
    ] = None,
    admin_token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the token actions need (or MLCYCLE_ADMIN_TOKEN); "
            "without one the dashboard is read-only."
        ),
    ] = None,
) -> None:
    """Browse runs, studies, models, deployments, monitoring, the loop and reports: a web app
    over the project's store."""
    import uvicorn

    from mlcycle import _settings
    from mlcycle.cli._serve import _secret
    from mlcycle.ui import create_app

    token = _secret(admin_token_file, "--admin-token-file", _settings.admin_token())
    if host not in ("127.0.0.1", "localhost", "::1"):
        out.print(f"[yellow]the dashboard listens on {host}: whoever reaches it can read it[/]")
    with state(ctx).open() as project:
        application = create_app(
            project, admin_token=token, host=host, allowed_hosts=allowed_host or ()
        )
        shown = f"[{host}]" if ":" in host else host
        mode = "actions need the admin token" if token else "read-only"
        out.print(f"dashboard of {project.root} on [bold]http://{shown}:{port}[/] ({mode})")
        uvicorn.run(application, host=host, port=port, log_level="warning")
