"""Dynamic batching: concurrent requests merged into one ONNX Runtime call.

A request that finds the batcher idle gathers what arrives with it (up to
``max_batch_rows``), runs it as one call on a worker thread (on the event
loop's own thread when the call is short or the process has one core), and
splits the answers back; requests that arrive meanwhile queue for the next
batch. Gathering lets the event loop turn once and goes on (up to
``max_delay_ms``) only while requests keep arriving, so a lone request waits
for nothing, while a busy server fills its batches.
The queue is bounded in rows: past ``max_queue_rows`` a request is refused
at once with :class:`~mlcycle.errors.Overloaded` instead of growing memory and latency.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcycle._system import cores
from mlcycle.errors import Overloaded
from mlcycle.registry._inputs import Feeds as RegistryFeeds

__all__ = ["Batcher", "Overloaded"]

INLINE_S = 0.0002  # calls expected to be shorter than this run on the event loop's thread


Feeds = dict[str, np.ndarray[Any, Any]]
Outputs = dict[str, np.ndarray[Any, Any]]


@dataclass
class _Item:
    feeds: Feeds
    rows: int
    future: asyncio.Future[Outputs] | None  # None: the leader's own, returned, not set


def _merge(parts: list[Feeds]) -> Feeds:
    """One request's worth of feeds from several, rows in order.

    Requests whose number inputs came as one ``[inputs, rows]`` block (see
    :class:`mlcycle.registry.Feeds`) are merged with one concatenation
    instead of one per input.
    """
    blocks: list[np.ndarray[Any, Any]] = []
    for part in parts:
        block = getattr(part, "block", None)
        if block is None or block.shape[0] != len(part):
            break
        blocks.append(block)
    else:
        joined = np.concatenate(blocks, axis=1)
        merged = RegistryFeeds(zip(parts[0], joined, strict=True))
        merged.block = joined
        return merged
    return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}


class Batcher:
    """Merges concurrent calls of ``run`` (feeds → outputs, both by name, rows first).

    A request that finds the batcher idle leads: it lets the event loop turn
    once (requests read in the same turn join it), runs the batch itself and
    returns its own slice, with no hop through a queue and a task. Requests
    that arrive while a batch is gathered or running wait for the next one,
    which a background task runs when the leader's batch is done.
    """

    def __init__(
        self,
        run: Callable[[Feeds], Outputs],
        executor: Executor,
        *,
        max_batch_rows: int = 64,
        max_delay_ms: float = 2.0,
        max_queue_rows: int = 4096,
        on_batch: Callable[[int, float], None] | None = None,
        inline: bool | None = None,
    ) -> None:
        self.run = run
        # On one core a worker thread cannot run beside the event loop: the hop
        # to it and back is pure cost, so every call runs inline.
        self.inline = cores() == 1 if inline is None else inline
        self.executor = executor
        self.max_batch_rows = max_batch_rows
        self.max_delay_s = max_delay_ms / 1000
        self.max_queue_rows = max_queue_rows
        self.on_batch = on_batch
        self.queued_rows = 0
        # moving average of the rows a request brings: what admission reserves for one
        self.request_rows = 1.0
        self._waiting: deque[_Item] = deque()
        self._busy = False  # a batch is being gathered or run (by a leader or the runner)
        self._runner: asyncio.Task[None] | None = None
        self._gather_seen: list[_Item] = []  # the batch being gathered
        self._closing = False
        self._row_s: float | None = None  # moving average of a call's seconds per row

    def start(self) -> None:
        """Nothing to start: kept for callers of the earlier API (the runner starts on demand)."""

    async def submit(self, feeds: Feeds, rows: int) -> Outputs:
        """Queue one request's rows; resolves with its slice of the batch's outputs.

        Raises:
            Overloaded: the queue holds too many rows already.
        """
        if self._closing:
            raise Overloaded(1.0)
        self.request_rows += 0.2 * (rows - self.request_rows)
        if self.queued_rows + rows > self.max_queue_rows and self.queued_rows > 0:
            raise Overloaded(max(0.05, self.queued_rows / max(self.max_batch_rows, 1) * 0.01))
        self.queued_rows += rows
        if self._busy:  # wait for a later batch
            future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
            self._waiting.append(_Item(feeds, rows, future))
            return await future
        self._busy = True
        leader = _Item(feeds, rows, None)
        try:
            try:
                items = await self._gather(leader)
            except BaseException:  # cancelled while gathering: the others wait for the next
                self._waiting.extendleft(i for i in reversed(self._gather_seen) if i is not leader)
                self.queued_rows -= rows
                raise
            outputs = await self._call(items)
        finally:
            self._hand_over()
        assert outputs is not None  # the leader's own slice
        return outputs

    def _hand_over(self) -> None:
        """After a batch: the runner takes what waits, or the batcher is idle again."""
        if self._waiting:
            if self._runner is None:
                self._runner = asyncio.get_running_loop().create_task(self._run_waiting())
        else:
            self._busy = False

    async def _run_waiting(self) -> None:
        try:
            while self._waiting:
                items = await self._gather(self._waiting.popleft())
                await self._call(items)
        finally:
            self._runner = None
            self._busy = bool(self._waiting)
            if self._busy:  # cancelled with work left (drain's timeout): fail it, do not hang
                while self._waiting:
                    item = self._waiting.popleft()
                    self.queued_rows -= item.rows
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(Overloaded(1.0))
                self._busy = False

    async def _gather(self, first: _Item) -> list[_Item]:
        """The next batch: ``first``, then whatever waits, at most ``max_batch_rows`` rows.

        Takes what is queued, then lets the event loop turn so requests already
        read (being decoded) can join, and stops at the first turn that brings
        none: waiting longer only delays a batch that no one else is coming to
        fill. ``max_delay_s`` caps the time spent gathering. A request that
        would overflow the batch stays first in line for the next one.
        """
        items = self._gather_seen = [first]
        rows = first.rows
        deadline = time.perf_counter() + self.max_delay_s
        waiting = self._waiting
        while rows < self.max_batch_rows:
            while waiting and rows + waiting[0].rows <= self.max_batch_rows:
                item = waiting.popleft()
                items.append(item)
                rows += item.rows
            if waiting or rows >= self.max_batch_rows or time.perf_counter() >= deadline:
                break
            await asyncio.sleep(0)
            if not waiting:
                break
        return items

    async def _call(self, items: list[_Item]) -> Outputs | None:
        """Run one batch; set each waiting item's slice, return the leader's (``None`` if none).

        Raises:
            Exception: what the call raised, for the leader (the others get it on their futures).
        """
        rows = sum(i.rows for i in items)
        started = time.perf_counter()
        own: Outputs | None = None
        try:
            feeds = items[0].feeds if len(items) == 1 else _merge([i.feeds for i in items])
            if self.inline or (self._row_s is not None and self._row_s * rows < INLINE_S):
                # a call this short costs less than the hop to a thread and back
                outputs, seconds = _timed(self.run, feeds)
            else:
                outputs, seconds = await asyncio.get_running_loop().run_in_executor(
                    self.executor, _timed, self.run, feeds
                )
            per_row = seconds / rows  # the call's own time, not the hop's
            self._row_s = per_row if self._row_s is None else 0.8 * self._row_s + 0.2 * per_row
        except BaseException as exc:
            # the call failed (every request of the batch gets its error), or the leader
            # was cancelled while a worker ran it (the others are told to retry)
            error = exc if isinstance(exc, Exception) else Overloaded(1.0)
            for item in items:
                if item.future is not None and not item.future.done():
                    item.future.set_exception(error)
            if any(item.future is None for item in items) or error is not exc:
                raise
            return None
        else:
            offset = 0
            for item in items:
                part = {k: v[offset : offset + item.rows] for k, v in outputs.items()}
                offset += item.rows
                if item.future is None:
                    own = part
                elif not item.future.done():
                    item.future.set_result(part)
        finally:
            self.queued_rows -= rows
            if self.on_batch is not None:
                self.on_batch(rows, time.perf_counter() - started)
        return own

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new work, finish what is queued, stop."""
        self._closing = True
        deadline = time.perf_counter() + timeout
        while self.queued_rows > 0 and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        if self._runner is not None:
            self._runner.cancel()


def _timed(run: Callable[[Feeds], Outputs], feeds: Feeds) -> tuple[Outputs, float]:
    started = time.perf_counter()
    outputs = run(feeds)
    return outputs, time.perf_counter() - started
