"""``mlcycle score``: batch-score a CSV or Parquet file with a registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mlcycle.cli._app import app, err, out, print_json, state
from mlcycle.errors import ConflictError

__all__ = ["score"]

# How batch scoring's errors name its Python arguments, and this command's flags for them.
_FLAGS = {
    "(chunk_rows)": "(--chunk-rows)",
    "(id_columns)": "(--id-column)",
    "pass restart=True": "run with --restart",
}


def with_score_flags(message: str) -> str:
    """A batch-scoring error as the ``score`` command says it: with its flags.

    Example:
        >>> with_score_flags("chunk size (chunk_rows) differ: pass restart=True to start over")
        'chunk size (--chunk-rows) differ: run with --restart to start over'
    """
    for python, flag in _FLAGS.items():
        message = message.replace(python, flag)
    return message


class _Bar:
    """A Rich progress bar on stderr: rows done (of the total, when known) and rows/s."""

    def __init__(self, label: str) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.task: TaskID = self.progress.add_task(label, total=None, rate="")
        self._start: float | None = None
        self._first = 0

    def __call__(self, done: int, total: int | None) -> None:
        if not self.progress.live.is_started:
            self.progress.start()
        now = self.progress.get_time()
        if self._start is None:
            self._start, self._first = now, done
        elapsed = now - self._start
        rate = (done - self._first) / elapsed if elapsed > 0 else 0.0
        self.progress.update(
            self.task, completed=done, total=total, rate=f"{rate:,.0f} rows/s" if rate else ""
        )


@app.command()
def score(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(metavar="MODEL", help="NAME@ALIAS or NAME@VERSION of a registered model."),
    ],
    input_path: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="A .csv file, a .parquet/.pq file or a folder of Parquet files "
            "(with --executor ray: a folder or URL such as s3://bucket/in/).",
        ),
    ],
    output: Annotated[
        str,
        typer.Argument(
            metavar="OUTPUT",
            help="A .parquet/.pq or .csv file for the predictions "
            "(with --executor ray: a folder or URL, one output per input file).",
        ),
    ],
    id_column: Annotated[
        list[str] | None,
        typer.Option(
            "--id-column",
            help="Copy this column to the output (repeat for several; "
            "default: 'id' and '*_id' columns).",
        ),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="Rows per chunk (and per part file).")
    ] = 65_536,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Scoring threads (default: the cores, at most 4)."),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help="CSV of rejected rows (default: OUTPUT.rejects.csv)."),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart", help="Discard an unfinished job's parts made from another model or input."
        ),
    ] = False,
    no_log: Annotated[
        bool, typer.Option("--no-log", help="Do not write the predictions to the prediction log.")
    ] = False,
    log_sample: Annotated[
        float,
        typer.Option(
            "--log-sample",
            help="Fraction of the scored rows written to the prediction log (default: all).",
        ),
    ] = 1.0,
    slice_rows: Annotated[
        int | None,
        typer.Option(
            "--slice-rows",
            min=1,
            help="Rows per ONNX Runtime call (default: measured on the first chunk "
            "of a large input, else 4,096).",
        ),
    ] = None,
    log_inputs: Annotated[
        str,
        typer.Option(
            "--log-inputs",
            help="reference: the log records INPUT once and points each row at it (monitoring "
            "reads the inputs from it); copy: a second copy of every input row in the log, "
            "for an input that will not be kept.",
        ),
    ] = "reference",
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local (this process) or ray: the files of INPUT spread over a Ray "
            "cluster (RAY_ADDRESS, or a local instance).",
        ),
    ] = "local",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score every row of INPUT into OUTPUT, streaming; a killed job resumes when rerun."""
    from mlcycle.batch import score_file

    if executor == "ray":
        _score_on_ray(
            ctx, model, input_path, output, chunk_rows, id_column, workers, restart, as_json
        )
        return
    if executor != "local":
        raise typer.BadParameter(f"{executor!r}: expected local or ray", param_hint="--executor")
    bar = None if quiet else _Bar(f"scoring {Path(input_path).name}")
    with state(ctx).open() as project:
        try:
            summary = score_file(
                model,
                Path(input_path),
                Path(output),
                project=project,
                id_columns=id_column or None,
                chunk_rows=chunk_rows,
                workers=workers,
                rejects=rejects,
                restart=restart,
                log=not no_log,
                log_sample=log_sample,
                slice_rows=slice_rows,
                log_inputs=log_inputs,
                progress=bar,
            )
        except ConflictError as exc:
            raise ConflictError(with_score_flags(str(exc))) from None
        finally:
            if bar is not None and bar.progress.live.is_started:
                bar.progress.stop()
    if as_json:
        print_json(summary.to_dict())
        return
    resumed = f" ({summary.resumed_rows:,} done before, resumed)" if summary.resumed_rows else ""
    out.print(
        f"[green]scored[/] {summary.scored:,} of {summary.rows:,} rows with "
        f"[bold]{summary.model}[/] in {summary.seconds:.1f} s "
        f"({summary.rows_per_s:,.0f} rows/s){resumed} → {summary.output}"
    )
    out.print(
        f"  {summary.slice_rows:,}-row ONNX Runtime calls ({summary.slice_choice}), "
        f"{summary.workers} worker{'s' if summary.workers != 1 else ''} × "
        f"{summary.threads} thread{'s' if summary.threads != 1 else ''}"
    )
    if summary.rejected:
        out.print(f"[yellow]rejected[/] {summary.rejected:,} rows → {summary.rejects}")


def _score_on_ray(
    ctx: typer.Context,
    model: str,
    input_path: str,
    output: str,
    chunk_rows: int,
    id_column: list[str] | None,
    workers: int | None,
    restart: bool,
    as_json: bool,
) -> None:
    from mlcycle.batch import score_files_on_ray

    with state(ctx).open() as project:
        root = project.root
    try:
        summary = score_files_on_ray(
            model,
            input_path,
            output,
            project=root,
            workers=workers,
            chunk_rows=chunk_rows,
            id_columns=id_column or None,
            restart=restart,
            progress=lambda done, total: err.print(f"scored {done} of {total} files"),
        )
    except ConflictError as exc:
        raise ConflictError(with_score_flags(str(exc))) from None
    if as_json:
        print_json(summary.to_dict())
        return
    resumed = f" ({summary.skipped_files} files done before)" if summary.skipped_files else ""
    out.print(
        f"[green]scored[/] {summary.scored:,} of {summary.rows:,} rows in {summary.files} files "
        f"with [bold]{summary.model}[/] on {summary.workers} Ray workers in "
        f"{summary.seconds:.1f} s ({summary.rows_per_s:,.0f} rows/s){resumed} → {summary.output}"
    )
    if summary.rejected:
        out.print(
            f"[yellow]rejected[/] {summary.rejected:,} rows (see *.rejects.csv beside the outputs)"
        )
