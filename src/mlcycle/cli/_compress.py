"""``mlcycle compress``: smaller, faster variants of a version, measured, the best registered."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlcycle.cli._app import app, out, print_json, state


@app.command()
def compress(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS.")],
    methods: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help="dynamic-int8 | static-int8 | fp16 | prune | prune+static-int8 (repeatable).",
        ),
    ] = None,
    auto: Annotated[
        bool,
        typer.Option(
            "--auto", help="Try every method; register the smallest variant that is faster."
        ),
    ] = False,
    max_drop: Annotated[
        float,
        typer.Option("--max-drop", help="Most the headline metric may drop, in points."),
    ] = 0.5,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="The deployment batch size to be faster at.")
    ] = 64,
    calibration: Annotated[
        str, typer.Option("--calibration", help="minmax | entropy | percentile (static int8).")
    ] = "minmax",
    calibration_data: Annotated[
        Path | None,
        typer.Option(
            "--calibration-data",
            help="CSV or Parquet of input rows to calibrate on (default: the training split).",
        ),
    ] = None,
    per_channel: Annotated[
        bool | None,
        typer.Option(
            "--per-channel/--per-tensor",
            help="Weight scales per output channel or per tensor (default: per channel "
            "when the graph has convolutions).",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="ONNX Runtime threads when timing.")
    ] = None,
    no_register: Annotated[
        bool, typer.Option("--no-register", help="Measure and report; register nothing.")
    ] = False,
    alias: Annotated[
        str | None, typer.Option("--alias", help="Put this alias on the registered variant.")
    ] = None,
    prune_ratio: Annotated[
        float,
        typer.Option("--prune-ratio", help="Share of neurons/channels prune cuts (0-1)."),
    ] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Quantize a version, measure every variant against it, keep the ones that pay."""
    from mlcycle.compress import compress as run

    with state(ctx).open() as project:
        result = run(
            project,
            ref,
            methods=methods,
            auto=auto,
            max_drop=max_drop,
            batch=batch,
            calibration=calibration,
            per_channel=per_channel,
            calibration_data=calibration_data,
            threads=threads,
            register=not no_register,
            alias=alias,
            prune_ratio=prune_ratio,
            on_step=None if as_json else (lambda step: out.print(f"[dim]{step}…[/]")),
        )
    if as_json:
        print_json(result.to_dict())
        return
    view = Table(
        "variant", "verdict", result.metric, "size", "ms @1", f"ms @{result.batch}", "version"
    )
    for v in result.variants:
        view.add_row(
            v.method,
            v.verdict,
            "-" if v.test.get(result.metric) is None else f"{v.test[result.metric]:.4f}",
            f"{v.size_bytes:,}" if v.size_bytes else "-",
            f"{v.latency_ms[1]:.3f}" if 1 in v.latency_ms else "-",
            f"{v.latency_ms[result.batch]:.3f}" if result.batch in v.latency_ms else "-",
            v.version or "",
        )
    out.print(view)
    for v in result.variants[1:]:
        out.print(f"{v.method}: {v.reason or v.error}")
    out.print(f"report: {result.report}")


@app.command()
def distill(
    ctx: typer.Context,
    teacher: Annotated[str, typer.Argument(help="The teacher: NAME@VERSION or NAME@ALIAS.")],
    student: Annotated[
        list[str] | None,
        typer.Option(
            "--student",
            help="The student's spec overrides: key=value (model.hidden=[32], max_epochs=20).",
        ),
    ] = None,
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, help="Seeds 0..N-1: both students each.")
    ] = 1,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="T (default train.distill).")
    ] = None,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Weight of the teacher's loss, 0-1.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Register the student under this model (default: the teacher's)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Distil a teacher into a smaller student, reported against the student trained alone."""
    from mlcycle.cli._train import parse_sets
    from mlcycle.compress import distill as run

    with state(ctx).open() as project:
        result = run(
            project,
            teacher,
            student=parse_sets(student or []),
            seeds=range(seeds),
            temperature=temperature,
            alpha=alpha,
            register_as=name,
            on_step=None if as_json else (lambda step: out.print(f"[dim]{step}…[/]")),
        )
    if as_json:
        print_json(result.to_dict())
        return
    view = Table("seed", "alone", "distilled", title=f"test accuracy, students of {result.teacher}")
    for row in result.seeds:
        view.add_row(
            str(row["seed"]),
            f"{row['alone']['accuracy']:.4f}",
            f"{row['distilled']['accuracy']:.4f}",
        )
    out.print(view)
    d = result.difference
    verdict = (
        "distillation helped"
        if d["low"] > 0
        else ("distillation hurt" if d["high"] < 0 else "no difference shown")
    )
    out.print(
        f"distilled minus alone: {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] "
        f"(paired bootstrap, 95%): {verdict}; registered {result.registered}"
    )
