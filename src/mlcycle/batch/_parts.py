"""The work folder of a scoring job: numbered part files that make a job resumable.

Layout next to the output ``OUTPUT``::

    OUTPUT.parts/
      job.json                 what the parts were made from (model version, input, chunking)
      .lock                    held while a process works here
      00000000.arrow           chunk 0's predictions (Arrow IPC; row counts in its metadata)
      00000000.rejects.csv     chunk 0's rejected rows, when it has any
      output.tmp, rejects.tmp  the output files being written, renamed into place at the end

Every part is written under a temporary name and renamed, and a chunk's
rejects are written before its predictions, so a part that exists is
complete. The output is written while the job runs, chunk after chunk in
input order (the parts of an earlier, killed run are read back first), and
renamed to ``OUTPUT`` when the last chunk is in; the folder is then removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from mlcycle._system import write_atomic
from mlcycle.errors import ConflictError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock, the rest works
    fcntl = None  # type: ignore[assignment]

__all__ = ["JOB_FORMAT", "OutputWriter", "PartCounts", "WorkFolder"]

JOB_FORMAT = "mlcycle-batch-job/1"
_ROWS_KEY = b"mlcycle.rows"
_REJECTED_KEY = b"mlcycle.rejected"
# fields of job.json that must match for the parts to be reused, with the words to name them
_MUST_MATCH = {
    "model": "model version",
    "input": "input file(s)",
    "chunk_rows": "chunk size (chunk_rows)",
    "id_columns": "id columns (id_columns)",
    "inputs": "model input columns",
}


@dataclass(frozen=True)
class PartCounts:
    """How many input rows a finished chunk held, and how many of them were rejected."""

    rows: int
    rejected: int


def _write_ipc(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


class WorkFolder:
    """The parts of one output file's job, and the lock that keeps a second process out."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = output.with_name(output.name + ".parts")
        self._lock: IO[bytes] | None = None

    def part(self, index: int) -> Path:
        return self.path / f"{index:08d}.arrow"

    def rejects_part(self, index: int) -> Path:
        return self.path / f"{index:08d}.rejects.csv"

    def start(self, job: dict[str, Any], *, restart: bool) -> tuple[dict[str, Any], bool]:
        """Take the folder for ``job``; returns the job record in force and whether it resumes.

        Raises:
            ConflictError: another process holds the folder, or the parts there
                were made from another model version, input or chunking (and
                ``restart`` is false).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        record_path = self.path / "job.json"
        previous = _read_json(record_path)
        if previous is not None and not restart:
            changed = [words for key, words in _MUST_MATCH.items() if previous.get(key) != job[key]]
            if changed:
                self.release()
                raise ConflictError(
                    f"{self.path} holds the parts of an unfinished job, but its "
                    f"{', '.join(changed)} differ from this run's "
                    f"(model then {previous.get('model')}, now {job['model']}): "
                    "pass restart=True to discard them and start over"
                )
            self._sweep(keep_parts=True)
            return previous, True
        self._sweep(keep_parts=False)
        write_atomic(record_path, lambda tmp: tmp.write_text(json.dumps(job, indent=2) + "\n"))
        return job, False

    def done(self) -> dict[int, PartCounts]:
        """The finished chunks: index -> counts (read from each part's schema metadata)."""
        found: dict[int, PartCounts] = {}
        for path in self.path.glob("[0-9]*.arrow"):
            with pa.memory_map(str(path)) as source:
                metadata = ipc.open_file(source).schema.metadata or {}
            found[int(path.stem)] = PartCounts(
                int(metadata[_ROWS_KEY]), int(metadata.get(_REJECTED_KEY, b"0"))
            )
        return found

    def write_part(self, index: int, table: pa.Table, counts: PartCounts, rejects: str) -> None:
        """Commit one chunk: its rejects (CSV lines, may be empty), then its predictions."""
        if rejects:
            write_atomic(self.rejects_part(index), lambda tmp: tmp.write_text(rejects))
        meta = {_ROWS_KEY: str(counts.rows).encode(), _REJECTED_KEY: str(counts.rejected).encode()}
        table = table.replace_schema_metadata(meta)
        write_atomic(self.part(index), lambda tmp: _write_ipc(table, tmp))

    def read_part(self, index: int) -> tuple[pa.Table, str]:
        """A finished chunk's predictions and rejects lines, as :meth:`write_part` got them."""
        with pa.memory_map(str(self.part(index))) as source:
            table = ipc.open_file(source).read_all()
        rejects = self.rejects_part(index)
        return table, rejects.read_text() if rejects.exists() else ""

    def remove(self) -> None:
        self.release()
        shutil.rmtree(self.path, ignore_errors=True)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the flock
            self._lock = None

    def _take_lock(self) -> None:
        handle = (self.path / ".lock").open("ab")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise ConflictError(
                    f"another 'mlcycle score' is writing {self.path}: wait for it or stop it"
                ) from None
        self._lock = handle

    def _sweep(self, *, keep_parts: bool) -> None:
        """Remove what a killed run left half-written (and every part, unless kept)."""
        for path in self.path.iterdir():
            if path.name == ".lock":
                continue
            if path.name.endswith(".tmp") or not keep_parts:
                path.unlink(missing_ok=True)


class OutputWriter:
    """Streams chunks, in order, into the output file and the rejects file.

    Both are written inside the work folder and renamed into place by
    :meth:`commit`, so ``OUTPUT`` never exists half-written.
    """

    def __init__(
        self, work: WorkFolder, fmt: str, output: Path, rejects: Path, rejects_header: str
    ) -> None:
        self.fmt = fmt
        self.output = output
        self.rejects = rejects
        self.rejects_header = rejects_header
        self.rows = 0
        self._tmp = work.path / "output.tmp"
        self._rejects_tmp = work.path / "rejects.tmp"
        self._writer: Any = None
        self._rejects_file: IO[str] | None = None

    def append(self, table: pa.Table, rejects: str) -> None:
        """Add one chunk's predictions and rejects lines."""
        table = table.replace_schema_metadata(None)
        if self._writer is None:
            self._writer = (
                _parquet_writer(self._tmp, table.schema)
                if self.fmt == "parquet"
                else pcsv.CSVWriter(str(self._tmp), table.schema)
            )
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows
        if rejects:
            if self._rejects_file is None:
                self._rejects_file = self._rejects_tmp.open("w", encoding="utf-8", newline="")
                self._rejects_file.write(self.rejects_header)
            self._rejects_file.write(rejects)

    def commit(self) -> bool:
        """Close both files and rename them into place; returns whether a row was rejected.

        With no rejected row, a rejects file of the same name (from an earlier
        run of the same output) is removed: it does not describe this output.
        """
        self._close()
        os.replace(self._tmp, self.output)
        if self._rejects_file is not None:
            os.replace(self._rejects_tmp, self.rejects)
            return True
        self.rejects.unlink(missing_ok=True)
        return False

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._close()
        self._tmp.unlink(missing_ok=True)
        self._rejects_tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._rejects_file is not None:
            self._rejects_file.close()


def _parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    # dictionary pages pay off for labels and ids, not for probabilities: trying them
    # on float columns doubles the write time for nothing
    text = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    return pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=text)


def _read_json(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and data.get("format") == JOB_FORMAT:
            return data
    return None
