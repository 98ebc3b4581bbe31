"""Turn a chunk of input rows into ONNX feeds, setting aside the rows the model cannot take.

A chunk is validated whole first (the common case: one vectorised pass per
column). When that fails, the chunk is cut in halves and each half tried again,
down to single rows: the good rows are kept in large slices and each bad row
is found in ``O(log n)`` tries, so a few bad rows cost little in a large chunk
and a bad row never aborts the job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mlcycle.errors import DataError
from mlcycle.registry import model_inputs

__all__ = ["Checked", "Reject", "check_chunk", "model_inputs"]

Feeds = dict[str, np.ndarray[Any, Any]]
_AT_ROW_0 = re.compile(r"\bat row 0\b")


@dataclass(frozen=True)
class Reject:
    """A row the model cannot take: its 0-based position in the chunk and why."""

    row: int
    reason: str


@dataclass(frozen=True)
class Checked:
    """A validated chunk.

    Attributes:
        rows: the positions (in the chunk) of the rows in ``feeds``, or ``None`` for all rows.
        feeds: the graph's inputs for those rows.
        rejects: the rows set aside, in order.
    """

    rows: np.ndarray[Any, Any] | None
    feeds: Feeds
    rejects: list[Reject]


def check_chunk(
    table: pa.Table,
    signature: Mapping[str, Any],
    to_feeds: Callable[[pa.Table], Feeds],
    *,
    first_row: int = 0,
) -> Checked:
    """Feeds for the rows of ``table`` the model takes, and why each other row is rejected.

    Args:
        table: the chunk, holding (at least) the model's input columns.
        signature: the model's signature.
        to_feeds: validation of a table of input columns (``Predictor.feeds``).
        first_row: the input row number of the chunk's first row, for the reasons.
    """
    whole = model_inputs(table, signature)
    try:
        return Checked(None, to_feeds(whole), [])
    except DataError:
        pass
    pieces: list[tuple[int, int, Feeds]] = []
    rejects: list[Reject] = []
    # halves as a stack, right half pushed first, so pieces come out in row order
    stack = [(0, table.num_rows // 2), (table.num_rows // 2, table.num_rows)]
    stack.reverse()
    while stack:
        start, stop = stack.pop()
        if start == stop:
            continue
        part = model_inputs(table.slice(start, stop - start), signature)
        try:
            pieces.append((start, stop, to_feeds(part)))
            continue
        except DataError as exc:
            if stop - start == 1:
                # a one-row table is always "row 0": say which input row it is
                reason = _AT_ROW_0.sub(f"at row {first_row + start}", str(exc))
                rejects.append(Reject(start, reason))
                continue
        middle = (start + stop) // 2
        stack.extend([(middle, stop), (start, middle)])
    if not pieces:
        return Checked(np.empty(0, dtype=np.int64), {}, rejects)
    rows = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b, _ in pieces])
    feeds = {name: np.concatenate([f[name] for _, _, f in pieces]) for name in pieces[0][2]}
    return Checked(rows, feeds, rejects)
