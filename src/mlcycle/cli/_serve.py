"""``mlcycle serve``: answer predictions over HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mlcycle.cli._app import app, err, state
from mlcycle.errors import SpecError


@app.command()
def serve(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS to serve (the server follows the alias).")],
    host: Annotated[
        str, typer.Option(help="Bind address; loopback unless told otherwise.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    canary: Annotated[
        str | None,
        typer.Option(help="ALIAS:PERCENT, e.g. challenger:10 (sticky by X-Request-Key)."),
    ] = None,
    shadow: Annotated[
        str | None, typer.Option(help="ALIAS mirrored: answers logged, never returned.")
    ] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Rows per ONNX Runtime call.")] = 64,
    max_delay_ms: Annotated[float, typer.Option(min=0, help="Wait for a batch to fill.")] = 2.0,
    max_queue: Annotated[int, typer.Option(min=1, help="Queued rows before 503.")] = 4096,
    admin_token: Annotated[
        str | None, typer.Option(help="Token for admin routes (or MLCYCLE_ADMIN_TOKEN).")
    ] = None,
    feedback_token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding a Bearer token /feedback requires (or MLCYCLE_FEEDBACK_TOKEN)."
        ),
    ] = None,
) -> None:
    """Serve a registered model: KServe V2 API, /predict, /feedback, /metrics."""
    from mlcycle.serve import ServeSettings, run

    feedback_token = _secret(feedback_token_file, "--feedback-token-file", "MLCYCLE_FEEDBACK_TOKEN")
    with state(ctx).open() as project:
        version = project.store.registry.get(ref)  # fails early on a bad reference
        root = project.root
    name = ref.split("@")[0]
    canary_ref, percent = None, 0.0
    if canary is not None:
        alias, _, share = canary.partition(":")
        try:
            percent = float(share)
        except ValueError:
            raise SpecError(
                f"--canary {canary!r}: expected ALIAS:PERCENT, e.g. challenger:10"
            ) from None
        if not 0 < percent <= 100:
            raise SpecError(f"--canary {canary!r}: {percent:g} is not in (0, 100]")
        canary_ref = f"{name}@{alias}"
    settings = ServeSettings(
        project=root,
        ref=ref,
        canary=canary_ref,
        canary_percent=percent,
        shadow=f"{name}@{shadow}" if shadow else None,
        max_batch_rows=max_batch,
        max_delay_ms=max_delay_ms,
        max_queue_rows=max_queue,
        admin_token=admin_token or os.environ.get("MLCYCLE_ADMIN_TOKEN"),
        feedback_token=feedback_token,
    )
    err.print(
        f"serving {version.ref} (following {ref}) on http://{host}:{port} with {workers} worker(s)"
    )
    run(settings, host=host, port=port, workers=workers)


def _secret(path: Path | None, option: str, env: str) -> str | None:
    """A token from a file (``option``) or the environment, never from the command line (``ps``)."""
    if path is None:
        return os.environ.get(env) or None
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise SpecError(f"{option} {path}: no such file") from None
    except OSError as exc:
        raise SpecError(f"{option} {path}: {exc.strerror or exc}") from None
    if not token:
        raise SpecError(f"{option} {path} is empty")
    return token
