"""``score_file``: score a file of any size with a registered model, resumably.

This module checks the request (paths, formats, columns), loads the model,
describes the job in ``job.json`` and reports; the pipeline that does the
work is in ``_pipeline.py``, the work folder in ``_parts.py``.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle._system import cores as available_cores
from mlcycle.batch._output import BatchLog, output_columns, rejects_header
from mlcycle.batch._parts import JOB_FORMAT, OutputWriter, WorkFolder
from mlcycle.batch._pipeline import ChunkScorer, Progress, run_chunks
from mlcycle.batch._source import PARQUET_SUFFIXES, Source, open_source
from mlcycle.errors import DataError
from mlcycle.registry import Predictor, load
from mlcycle.store import ProjectStores

if TYPE_CHECKING:
    from mlcycle.store import StoreHandle

__all__ = ["DEFAULT_CHUNK_ROWS", "Progress", "ScoreSummary", "score_file"]

DEFAULT_CHUNK_ROWS = 65_536
# Inputs this large measure their ONNX Runtime call size: the calibration costs some
# 50,000-100,000 rows of model time, a few percent of a million rows' job.
CALIBRATE_MIN_ROWS = 1_000_000
CALIBRATE_MIN_CSV_BYTES = 64 << 20  # a CSV's row count is unknown until read: go by its size
LOG_INPUTS = ("reference", "copy")


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring job did.

    Attributes:
        model: ``name@version`` that scored.
        output: the output file.
        rejects: the rejects file, or ``None`` when no row was rejected.
        rows: input rows.
        scored: rows written to the output.
        rejected: rows written to the rejects file.
        resumed_rows: rows an earlier, interrupted run of the same job had done.
        seconds: this run's wall time.
        rows_per_s: rows this run processed per second.
        job_id: the job's id (prefix of its request ids in the prediction log).
        slice_rows: rows per ONNX Runtime call.
        slice_choice: how ``slice_rows`` was chosen: ``"measured"`` on the first
            chunk, ``"given"`` by the caller, or ``"default"`` (an input too
            small for measuring to pay).
        slice_rates: rows/s per call size timed when measured (one thread), else empty.
        calibration_s: seconds the measuring took (other workers went on scoring).
        workers: scoring threads.
        threads: ONNX Runtime intra-op threads per worker.
    """

    model: str
    output: str
    rejects: str | None
    rows: int
    scored: int
    rejected: int
    resumed_rows: int
    seconds: float
    rows_per_s: float
    job_id: str
    slice_rows: int
    slice_choice: str
    slice_rates: dict[str, float]
    calibration_s: float
    workers: int
    threads: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _output_format(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise DataError(f"output {str(output)!r}: expected a .parquet, .pq or .csv file name")


def _id_columns(
    source: Source, given: list[str] | None, signature: dict[str, Any], model: str
) -> list[str]:
    available = source.column_names
    if given is not None:
        missing = [c for c in given if c not in available]
        if missing:
            raise DataError(
                f"id column {missing[0]!r} is not in {str(source.path)!r} "
                f"(its columns: {', '.join(available)})"
            )
        ids = list(dict.fromkeys(given))
    else:
        target = signature.get("target")
        ids = [
            c for c in available if c != target and (c.lower() == "id" or c.lower().endswith("_id"))
        ]
    clash = set(ids) & set(output_columns(signature))
    if clash:
        raise DataError(
            f"id column {sorted(clash)[0]!r} has the name of a prediction column of {model}: "
            "rename it in the input"
        )
    return ids


def _check_inputs(source: Source, predictor: Predictor) -> None:
    missing = [n for n in predictor.input_names if n not in source.column_names]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        names = predictor.input_names
        takes = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
        raise DataError(
            f"input {str(source.path)!r} lacks column {missing[0]!r}{more}: "
            f"{predictor.ref} takes {takes}"
        )


def score_file(
    model: str | Predictor,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    project: StoreHandle | str | os.PathLike[str] | None = None,
    id_columns: list[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int | None = None,
    rejects: str | os.PathLike[str] | None = None,
    restart: bool = False,
    log: bool = True,
    log_sample: float = 1.0,
    log_inputs: str = "reference",
    slice_rows: int | None = None,
    progress: Progress | None = None,
) -> ScoreSummary:
    """Score every row of a CSV or Parquet file (or a folder of Parquet files) into ``output``.

    The input is streamed in chunks of ``chunk_rows`` rows, so memory stays flat
    whatever its size. Only the model's input columns and the id columns are
    read; other columns are ignored. Each chunk is committed as a part file in
    ``OUTPUT.parts/``: a job killed part-way and run again with the same
    arguments continues where it stopped, and its output is the same as an
    uninterrupted run's. Rows the model cannot take go, with their input row
    number (0-based) and the reason, to the rejects file; the others are scored.

    Args:
        model: ``NAME@ALIAS`` / ``NAME@VERSION`` of a registered model, or a loaded predictor.
        input: a ``.csv``, ``.parquet`` / ``.pq`` file, or a folder of Parquet files.
        output: a ``.parquet`` / ``.pq`` or ``.csv`` file: the id columns, then ``label``
            and ``proba_<class>`` per class (classification) or ``value`` (regression).
        project: the project (or its folder; default: found from the current folder).
        id_columns: columns copied to the output (default: ``id`` and ``*_id`` columns).
        chunk_rows: rows per chunk (and per part file).
        workers: scoring threads (default: the cores, at most 4); each ONNX Runtime
            call gets ``cores // workers`` threads.
        rejects: the rejects CSV (default: ``OUTPUT.rejects.csv``).
        restart: discard the parts of an unfinished job made from another model
            version or input, instead of refusing.
        log: write each scored chunk to the project's prediction log (source ``batch``).
        log_sample: the fraction of scored rows the log keeps (``1.0``: every row).
            Which rows is decided by their row number, so a resumed job logs the
            same ones; a sample is enough for drift and is much cheaper on a large
            file (see ``bench/RESULTS.md``), but feedback can only be joined to
            the rows logged.
        log_inputs: how the log keeps a scored row's inputs: ``"reference"`` (the
            input file is recorded once and each row points at its row number in it;
            monitoring reads the inputs through the reference, and says so when the
            file is gone or changed) or ``"copy"`` (a second copy of every input row in
            the log: for inputs that will not be kept). Outputs are logged either way.
        slice_rows: rows per ONNX Runtime call (default: measured on the first
            chunk of an input of a million rows or more, else 4,096). The
            predictions do not depend on it.
        progress: called after each chunk with the rows done and the total.

    Returns:
        The counts, timings and paths of the job.

    Raises:
        NotFoundError: the input, the project or the model does not exist.
        DataError: the input lacks a model input column, or a format is not supported.
        ConflictError: unfinished parts come from another model version or input.

    Example:
        >>> from mlcycle.batch import score_file
        >>> summary = score_file("cancer@champion", "patients.parquet", "scores.parquet")  # doctest: +SKIP
        >>> summary.scored, summary.rejected  # doctest: +SKIP
        (569, 0)
    """
    started = time.perf_counter()
    if chunk_rows < 1:
        raise DataError(f"chunk_rows: {chunk_rows} is not >= 1")
    if log_inputs not in LOG_INPUTS:
        raise DataError(f"log_inputs: {log_inputs!r} is not one of {', '.join(LOG_INPUTS)}")
    if slice_rows is not None and (isinstance(slice_rows, bool) or slice_rows < 1):
        raise DataError(f"slice_rows: {slice_rows} is not >= 1 (rows per ONNX Runtime call)")
    if not 0.0 < log_sample <= 1.0:
        raise DataError(f"log_sample: {log_sample} is not in (0, 1]: the fraction of rows to log")
    out_path, fmt = Path(output), _output_format(Path(output))
    source = open_source(input)
    if out_path.resolve() in {f.resolve() for f in source.files}:
        raise DataError(f"output {str(out_path)!r} is the input: choose another file")
    if source.path.is_dir() and out_path.resolve().is_relative_to(source.path.resolve()):
        raise DataError(
            f"output {str(out_path)!r} is inside the input folder {str(source.path)!r}: "
            "a later run would read it as input; write it elsewhere"
        )
    cores = available_cores()
    n_workers = max(1, workers or min(cores, 4))
    predictor, log_root = _load(model, project, threads=max(1, cores // n_workers), log=log)
    _check_inputs(source, predictor)
    ids = _id_columns(source, id_columns, predictor.signature, predictor.ref)
    columns = ids + [c for c in predictor.input_names if c not in ids]
    # sensitive, id and timestamp columns the model knows ride into the log (never fed)
    context = [
        str(c["name"])
        for c in predictor.signature.get("context") or ()
        if c["name"] in source.column_names
    ]
    columns += [c for c in context if c not in columns]
    rejects_path = (
        Path(rejects) if rejects is not None else out_path.with_name(out_path.name + ".rejects.csv")
    )
    fingerprint = source.fingerprint()
    job = {
        "format": JOB_FORMAT,
        "job_id": uuid.uuid4().hex[:12],
        "model": predictor.ref,
        "ref": model if isinstance(model, str) else predictor.ref,
        "input": fingerprint,
        "chunk_rows": chunk_rows,
        "id_columns": ids,
        "inputs": predictor.input_names,
        "created_at": datetime.now(UTC).isoformat(),
    }
    work = WorkFolder(out_path)
    record, _ = work.start(job, restart=restart)
    writer = OutputWriter(work, fmt, out_path, rejects_path, rejects_header(columns))
    batch_log = (
        BatchLog(log_root, predictor.name, predictor.version or 0) if log_root is not None else None
    )
    try:
        done = work.done()
        input_ref = (
            source.record(log_root, fingerprint)
            if log_root is not None and log_inputs == "reference"
            else None
        )
        scorer = ChunkScorer(
            predictor,
            work,
            ids,
            str(record["job_id"]),
            batch_log,
            log_sample,
            context,
            input_ref,
            slice_rows=slice_rows,
            calibrate=slice_rows is None and _worth_calibrating(source),
        )
        totals = run_chunks(source, columns, chunk_rows, done, scorer, writer, n_workers, progress)
        if totals.chunks == 0:
            work.remove()
            raise DataError(f"input {str(source.path)!r} has no rows to score")
        rejected_any = writer.commit()
    except BaseException:
        writer.abort()
        work.release()
        raise
    finally:
        if batch_log is not None:
            batch_log.close()
    work.remove()
    seconds = time.perf_counter() - started
    resumed_rows = sum(c.rows for c in done.values())
    rows = resumed_rows + totals.rows
    return ScoreSummary(
        model=predictor.ref,
        output=str(out_path),
        rejects=str(rejects_path) if rejected_any else None,
        rows=rows,
        scored=writer.rows,
        rejected=rows - writer.rows,
        resumed_rows=resumed_rows,
        seconds=seconds,
        rows_per_s=totals.rows / seconds if seconds > 0 else 0.0,
        job_id=str(record["job_id"]),
        slice_rows=scorer.run.slice_rows,
        slice_choice=(
            "given" if slice_rows is not None else "measured" if scorer.run.rates else "default"
        ),
        slice_rates={str(k): v for k, v in scorer.run.rates.items()},
        calibration_s=scorer.calibration_s,
        workers=n_workers,
        threads=predictor.session.get_session_options().intra_op_num_threads,
    )


def _worth_calibrating(source: Source) -> bool:
    """Whether the input is large enough for measuring the call size to pay."""
    if source.total_rows is not None:
        return source.total_rows >= CALIBRATE_MIN_ROWS
    return sum(f.stat().st_size for f in source.files) >= CALIBRATE_MIN_CSV_BYTES


def _load(
    model: str | Predictor,
    project: StoreHandle | str | os.PathLike[str] | None,
    *,
    threads: int,
    log: bool,
) -> tuple[Predictor, Path | None]:
    """The predictor, and the prediction log's folder (``None``: do not log)."""
    if isinstance(model, Predictor) and project is None:
        return model, None
    if project is None or isinstance(project, str | os.PathLike):
        with ProjectStores.open(project) as stores:
            return _load(model, stores, threads=threads, log=log)
    predictor = (
        model if isinstance(model, Predictor) else load(model, project=project, threads=threads)
    )
    return predictor, (project.root / ".mlcycle" / "log") if log else None
