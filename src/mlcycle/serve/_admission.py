"""Admission: a prediction request is taken or refused before its body is read.

The batcher's queue is bounded in rows (``max_queue_rows``), but a request
only reaches it after its body was read, parsed and validated: for a
1,024-row request that is most of its cost. Under overload every request was
decoded only to be refused at the queue, and successful throughput fell from
49 req/s at 4 connections to 1.4 at 200. So the queue's bound is applied
first, on an estimate: each admitted request reserves the rows that requests
have had lately (a moving average the batcher keeps), and a request that
would take the rows reserved past ``max_queue_rows`` is answered ``503`` with
``Retry-After`` at once, its body left unread (uvicorn skips it without
parsing). One request is always admitted when none is in flight, as the
batcher always queues one.
"""

from __future__ import annotations

__all__ = ["Admission"]


class Admission:
    """Rows reserved by the prediction requests in flight, bounded.

    >>> gate = Admission(max_rows=2048)
    >>> first = gate.enter(1024.0); second = gate.enter(1024.0)
    >>> gate.enter(1024.0) is None
    True
    >>> gate.leave(first); gate.enter(1024.0)
    1024.0
    """

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.rows = 0.0
        self.requests = 0
        self.refused = 0

    def enter(self, estimate: float) -> float | None:
        """Reserve ``estimate`` rows for a request; None when it must be refused."""
        if self.requests and self.rows + estimate > self.max_rows:
            self.refused += 1
            return None
        self.rows += estimate
        self.requests += 1
        return estimate

    def leave(self, reserved: float) -> None:
        """The request that reserved ``reserved`` rows is answered (or gone)."""
        self.requests -= 1
        self.rows = self.rows - reserved if self.requests else 0.0  # no float drift

    @property
    def message(self) -> str:
        return (
            f"server overloaded: {self.requests} requests ({self.rows:,.0f} rows) in flight, "
            f"the queue takes {self.max_rows:,} rows: retry later"
        )
