"""``mlcycle serve``: answer predictions over HTTP."""

from __future__ import annotations

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
    grpc_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Also serve the V2 API over gRPC on this port (same --host)."
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="Another Host name clients use (repeatable; '*': any name)."),
    ] = None,
    admin_token_file: Annotated[
        Path | None,
        typer.Option(help="File holding the admin routes' token (or MLCYCLE_ADMIN_TOKEN)."),
    ] = None,
    admin_token: Annotated[str | None, typer.Option(hidden=True)] = None,
    feedback_token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding a Bearer token /feedback requires (or MLCYCLE_FEEDBACK_TOKEN)."
        ),
    ] = None,
    admission_wait: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds a request the queue has no room for waits (unread) before its 503; "
            "0: at once.",
            show_default="1",
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Open connections; past them the longest idle one is closed for a new one "
            "(503 if none is idle).",
            show_default="2048",
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds to send a request's headers.", show_default="10"),
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds to send a request's body.", show_default="30"),
    ] = None,
    keepalive_timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds an idle connection is kept open.", show_default="5"),
    ] = None,
    explain_concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="/explain requests explained at once, off the prediction path "
            "(as many more wait; past them 429).",
        ),
    ] = 1,
    max_pending_body_mb: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="MiB of unfinished request bodies held at once, all clients together; "
            "past it 503.",
            show_default="64",
        ),
    ] = None,
) -> None:
    """Serve a registered model: KServe V2 API (REST, and gRPC with --grpc-port), /predict,
    /feedback, /explain, /metrics."""
    from mlcycle import _settings
    from mlcycle.serve import ServeSettings, run
    from mlcycle.serve._deployment import check_servable
    from mlcycle.serve._guard import allowed_hosts

    if admin_token is not None:  # ps shows a command line to every user of the machine
        raise SpecError(
            "--admin-token would show the token to every user of this machine (ps): "
            "set MLCYCLE_ADMIN_TOKEN or put it in a file given with --admin-token-file"
        )
    token = _secret(admin_token_file, "--admin-token-file", _settings.admin_token())
    feedback_token = _secret(
        feedback_token_file, "--feedback-token-file", _settings.feedback_token()
    )
    limits: dict[str, float] = {
        key: value
        for key, value in (
            ("admission_wait_s", admission_wait),
            ("max_connections", max_connections),
            ("header_timeout_s", header_timeout),
            ("body_timeout_s", body_timeout),
            ("keepalive_timeout_s", keepalive_timeout),
            (
                "max_pending_body_bytes",
                None if max_pending_body_mb is None else int(max_pending_body_mb * 2**20),
            ),
        )
        if value is not None
    }
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
    with state(ctx).open() as project:
        settings = ServeSettings(
            project=project.root,
            ref=ref,
            canary=canary_ref,
            canary_percent=percent,
            shadow=f"{name}@{shadow}" if shadow else None,
            max_batch_rows=max_batch,
            max_delay_ms=max_delay_ms,
            max_queue_rows=max_queue,
            admin_token=token,
            feedback_token=feedback_token,
            allowed_hosts=allowed_hosts(host, allowed_host or ()),
            grpc_port=grpc_port,
            grpc_host=host,
            explain_concurrency=explain_concurrency,
            **limits,  # type: ignore[arg-type]
        )
        version = check_servable(project, settings)  # every ref resolves, its files intact
    grpc = f" and gRPC on {host}:{grpc_port}" if grpc_port is not None else ""
    err.print(
        f"serving {version.ref} (following {ref}) on http://{host}:{port}{grpc} "
        f"with {workers} worker(s)"
    )
    run(settings, host=host, port=port, workers=workers)


def _secret(path: Path | None, option: str, default: str | None) -> str | None:
    """A token from a file (``option``), else ``default`` (the environment's): never from
    the command line, which ``ps`` shows to every user of the machine."""
    if path is None:
        return default
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise SpecError(f"{option} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{option} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise SpecError(f"{option} {path} is empty")
    return token
