"""A write that fails loses nothing: rows wait and are retried, drops are counted, errors said once."""

from __future__ import annotations

import errno
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from mlcycle.predictions import LoggedBatch, PredictionLog
from tests._disk import FullDisk, fill, open_files_under

AT = datetime(2026, 11, 27, 12, tzinfo=UTC)
ONLY_ON_DEMAND = {"flush_interval_s": 3600.0, "convert_interval_s": 3600.0}  # writes on flush()


def _batch(start: int, n: int, model: str = "m") -> LoggedBatch:
    return LoggedBatch(
        model,
        1,
        "serve",
        [f"r{i}" for i in range(start, start + n)],
        {"x": np.arange(start, start + n, dtype=np.float32)},
        0.5,
        labels=np.array(["a"] * n, dtype=object),
        at=AT,
    )


def _ids(log: PredictionLog, model: str = "m") -> list[str]:
    table = log.read(model)
    return table.column("request_id").to_pylist() if table.num_rows else []


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "mlcycle.predictions" and r.levelno >= logging.ERROR
    ]


def test_rows_of_a_failed_write_wait_and_are_written_in_order(
    tmp_path: Path, full_disk: FullDisk
) -> None:
    log = PredictionLog(tmp_path, **ONLY_ON_DEMAND)
    full_disk.full.set()
    log.append(_batch(0, 3))
    with pytest.raises(OSError, match="No space left on device"):
        log.flush()
    log.append(_batch(3, 2))
    with pytest.raises(OSError, match="No space left on device"):
        log.flush()  # the rows put back and the new ones, in one write that fails again
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("*.parquet"))
    full_disk.full.clear()
    log.append(_batch(5, 1))
    log.flush()
    log.close()
    assert _ids(log) == [f"r{i}" for i in range(6)]
    assert (log.written_rows, log.dropped_rows, log.pending_rows) == (6, 0, 0)


def test_a_full_buffer_drops_the_oldest_rows_and_counts_each(
    tmp_path: Path, full_disk: FullDisk
) -> None:
    log = PredictionLog(tmp_path, max_buffer_rows=10, **ONLY_ON_DEMAND)
    full_disk.full.set()
    for i in range(7):  # 21 rows: some wait as Arrow tables (put back), some as appended
        log.append(_batch(3 * i, 3))
        assert log.pending_rows <= 10
        if i % 2:
            with pytest.raises(OSError):
                log.flush()
    full_disk.full.clear()
    log.flush()
    log.close()
    written = _ids(log)
    assert len(written) + log.dropped_rows == 21
    assert log.dropped_rows == 11  # exactly what the bound of 10 rows could not hold
    assert written == [f"r{i}" for i in range(11, 21)]  # the oldest went first


def test_the_writer_says_once_per_interval_why_it_cannot_write(
    tmp_path: Path, full_disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlcycle.predictions")
    log = PredictionLog(tmp_path, flush_interval_s=0.01, report_interval_s=3600)
    full_disk.full.set()
    log.append(_batch(0, 1234))
    full_disk.wait_failures(5)  # five retries, one error line
    errors = _errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert message.startswith(f"prediction log: write to {tmp_path / 'predictions' / 'm'}")
    assert "failed: [Errno 28] No space left on device; 1,234 rows waiting, 0 dropped" in message
    assert errors[0].exc_info is None  # one line, not a traceback per attempt
    full_disk.full.clear()
    deadline = time.monotonic() + 30
    while log.written_rows < 1234 and time.monotonic() < deadline:
        time.sleep(0.01)
    log.close()
    assert _ids(log) == [f"r{i}" for i in range(1234)]
    assert any("prediction log: writing again" in r.getMessage() for r in caplog.records)
    assert len(_errors(caplog)) == 1


def test_close_retries_for_a_while_then_says_what_it_could_not_write(
    tmp_path: Path, full_disk: FullDisk, caplog: pytest.LogCaptureFixture
) -> None:
    log = PredictionLog(tmp_path, close_timeout_s=0.2, **ONLY_ON_DEMAND)
    full_disk.full.set()
    log.append(_batch(0, 4))
    log.close()  # neither raises nor loses the rows unsaid
    assert log.dropped_rows == 4 and log.pending_rows == 0
    (error,) = _errors(caplog)
    assert "closing with 4 rows not written" in error.getMessage()
    assert "No space left on device" in error.getMessage()


def test_close_writes_the_rows_when_space_comes_back_while_it_retries(
    tmp_path: Path, full_disk: FullDisk
) -> None:
    log = PredictionLog(tmp_path, close_timeout_s=60, **ONLY_ON_DEMAND)
    full_disk.full.set()
    full_disk.clear_after = 3
    log.append(_batch(0, 4))
    log.close()
    assert full_disk.failures == 3
    assert _ids(log) == ["r0", "r1", "r2", "r3"] and log.dropped_rows == 0


def test_feedback_is_on_disk_when_feedback_returns_or_it_raises(
    tmp_path: Path, full_disk: FullDisk
) -> None:
    log = PredictionLog(tmp_path, **ONLY_ON_DEMAND)
    full_disk.full.set()
    with pytest.raises(OSError, match="No space left on device"):
        log.feedback([("r1", "a"), ("r2", "b")])
    full_disk.full.clear()
    assert log.feedback([("r3", "a")]) == 1
    assert log.read_feedback().column("request_id").to_pylist() == ["r3"]  # before any close
    log.close()
    assert log.read_feedback().column("request_id").to_pylist() == ["r3"]
    assert not list(tmp_path.rglob("*.part"))


def test_a_segment_path_the_filesystem_refuses_holds_only_its_own_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = PredictionLog(tmp_path, close_timeout_s=0, **ONLY_ON_DEMAND)
    long_name = "m" * 300  # a folder name over the filesystem's 255 bytes
    log.append(_batch(0, 2, model=long_name))
    log.append(_batch(2, 3))
    with pytest.raises(OSError, match="File name too long"):
        log.flush()
    assert _ids(log) == ["r2", "r3", "r4"]  # the other model's rows are written
    assert log.pending_rows == 2
    log.close()
    assert log.dropped_rows == 2
    (error,) = _errors(caplog)
    assert "closing with 2 rows not written" in error.getMessage()
    assert "File name too long" in error.getMessage()


def test_on_a_real_full_filesystem_nothing_is_lost_or_left_open(tiny_fs: Path) -> None:
    log = PredictionLog(tiny_fs, **ONLY_ON_DEMAND)
    log.append(_batch(0, 1))
    log.flush()  # the folders exist; now there is no byte left
    filler = fill(tiny_fs)
    log.append(_batch(1, 2000))
    for _ in range(3):
        with pytest.raises(OSError) as failed:
            log.flush()
        assert failed.value.errno == errno.ENOSPC
        with pytest.raises(OSError) as failed:
            log.feedback([("r1", "a")])
        assert failed.value.errno == errno.ENOSPC
    # a failed write holds no file open: a deleted-but-open file keeps its blocks
    assert open_files_under(tiny_fs) == []
    assert not list(tiny_fs.rglob("*.part"))
    filler.unlink()
    log.flush()
    assert log.feedback([("r1", "a")]) == 1
    log.close()
    assert _ids(log) == [f"r{i}" for i in range(2001)]
    assert log.read_feedback().column("request_id").to_pylist() == ["r1"]
