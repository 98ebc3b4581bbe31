"""Admission: a prediction request is taken, made to wait, or refused before its body is read.

The batcher's queue is bounded in rows (``max_queue_rows``), but a request
only reaches it after its body was read, parsed and validated: for a
1,024-row request that is most of its cost. Under overload every request was
decoded only to be refused at the queue, and successful throughput fell from
49 req/s at 4 connections to 1.4 at 200. So the queue's bound is applied
first, on an estimate: each admitted request reserves the rows that requests
have had lately (a moving average the batcher keeps). One request is always
admitted when none is in flight, as the batcher always queues one.

A request that does not fit waits, unread, for room: up to
``admission_wait_s``, first come first served, and is then answered ``503``
with ``Retry-After``. Refusing it at once would be cheaper per request, but
a client that retries at once (many do, ignoring ``Retry-After``) then comes
back within a millisecond, and each refusal still costs the server the
transfer of the body it skips (0.5 MB for 1,024 rows): at 200 connections
those refusals took most of the CPU from the requests being answered.
Waiting bounds them to one per waiting connection per ``admission_wait_s``,
and a request that finds room meanwhile is served instead of refused.
``admission_wait_s = 0`` refuses at once (a load balancer that retries on
another replica may prefer that).
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Admission"]


class Admission:
    """Rows reserved by the prediction requests in flight, bounded, with a wait for room.

    >>> import asyncio
    >>> async def demo():
    ...     gate = Admission(max_rows=2048, wait_s=0)
    ...     first = await gate.enter(1024.0); second = await gate.enter(1024.0)
    ...     refused = await gate.enter(1024.0)
    ...     gate.leave(first)
    ...     return refused, await gate.enter(1024.0)
    >>> asyncio.run(demo())
    (None, 1024.0)
    """

    def __init__(self, max_rows: int, wait_s: float) -> None:
        self.max_rows = max_rows
        self.wait_s = wait_s
        self.rows = 0.0
        self.requests = 0
        self.refused = 0
        self._waiting: deque[tuple[float, asyncio.Future[bool]]] = deque()

    def _fits(self, estimate: float) -> bool:
        return not self.requests or self.rows + estimate <= self.max_rows

    def _reserve(self, estimate: float) -> None:
        self.rows += estimate
        self.requests += 1

    async def enter(self, estimate: float) -> float | None:
        """Reserve ``estimate`` rows for a request, waiting for room; None: refuse it."""
        if not self._waiting and self._fits(estimate):
            self._reserve(estimate)
            return estimate
        if self.wait_s <= 0:
            self.refused += 1
            return None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        entry = (estimate, waiter)
        self._waiting.append(entry)
        timer = loop.call_later(self.wait_s, _expire, waiter)
        try:
            admitted = await waiter  # leave() reserves the rows before it wakes us
        except BaseException:  # cancelled: give back rows reserved for it meanwhile
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.leave(estimate)
            raise
        finally:
            timer.cancel()
            if entry in self._waiting:
                self._waiting.remove(entry)
        if not admitted:
            self.refused += 1
            return None
        return estimate

    def leave(self, reserved: float) -> None:
        """The request that reserved ``reserved`` rows is answered (or gone): wake who fits."""
        self.requests -= 1
        self.rows = self.rows - reserved if self.requests else 0.0  # no float drift
        while self._waiting:
            estimate, waiter = self._waiting[0]
            if waiter.done():  # its wait ran out
                self._waiting.popleft()
                continue
            if not self._fits(estimate):
                break
            self._waiting.popleft()
            self._reserve(estimate)
            waiter.set_result(True)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def message(self) -> str:
        waited = f" and none came free within {self.wait_s:g} s" if self.wait_s > 0 else ""
        return (
            f"server overloaded: {self.requests} requests ({self.rows:,.0f} rows) in flight, "
            f"the queue takes {self.max_rows:,} rows{waited}: retry later"
        )


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
