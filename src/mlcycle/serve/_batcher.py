"""Dynamic batching: concurrent requests merged into one ONNX Runtime call.

Requests queue up; one task takes what is waiting (up to ``max_batch_rows``),
runs it as one call on a worker thread (on the event loop's own thread when
the call is short or the process has one core), and splits the answers back. It only
waits for more (up to ``max_delay_ms``) when the previous batch had company,
so a lone request is never delayed, while a busy server fills its batches.
The queue is bounded in rows: past ``max_queue_rows`` a request is refused
at once with :class:`~mlcycle.errors.Overloaded` instead of growing memory and latency.
"""

from __future__ import annotations

import asyncio
import time
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
    future: asyncio.Future[Outputs]


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
    """Merges concurrent calls of ``run`` (feeds → outputs, both by name, rows first)."""

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
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._held: _Item | None = None
        self._row_s: float | None = None  # moving average of a call's seconds per row

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

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
        self.start()
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self.queued_rows += rows
        self._queue.put_nowait(_Item(feeds, rows, future))
        return await future

    async def _next(self, timeout: float | None = None) -> _Item:
        if self._held is not None:
            item, self._held = self._held, None
            return item
        if timeout is None:
            return await self._queue.get()
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def _collect(self) -> list[_Item]:
        """The next batch: at least one request, at most ``max_batch_rows`` rows.

        Takes what is queued, then lets the event loop turn so requests already
        read (being decoded) can join, and stops at the first turn that brings
        none: waiting longer only delays a batch that no one else is coming to
        fill. ``max_delay_s`` caps the time spent gathering.
        """
        items = [await self._next()]
        rows = items[0].rows
        deadline = time.perf_counter() + self.max_delay_s

        def take(item: _Item) -> bool:
            nonlocal rows
            if rows + item.rows > self.max_batch_rows:
                self._held = item  # it opens the next batch
                return False
            items.append(item)
            rows += item.rows
            return True

        while self._held is None and rows < self.max_batch_rows:
            while self._held is None and rows < self.max_batch_rows and not self._queue.empty():
                take(self._queue.get_nowait())
            if self._held is not None or rows >= self.max_batch_rows:
                break
            if time.perf_counter() >= deadline:
                break
            await asyncio.sleep(0)
            if self._queue.empty():
                break
        return items

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect()
            rows = sum(i.rows for i in items)
            started = time.perf_counter()
            try:
                feeds = items[0].feeds if len(items) == 1 else _merge([i.feeds for i in items])
                if self.inline or (self._row_s is not None and self._row_s * rows < INLINE_S):
                    # a call this short costs less than the hop to a thread and back
                    outputs = self.run(feeds)
                else:
                    outputs = await loop.run_in_executor(self.executor, self.run, feeds)
                per_row = (time.perf_counter() - started) / rows
                self._row_s = per_row if self._row_s is None else 0.8 * self._row_s + 0.2 * per_row
            except Exception as exc:
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)
            else:
                offset = 0
                for item in items:
                    part = {k: v[offset : offset + item.rows] for k, v in outputs.items()}
                    offset += item.rows
                    if not item.future.done():
                        item.future.set_result(part)
            finally:
                self.queued_rows -= rows
            if self.on_batch is not None:
                self.on_batch(rows, time.perf_counter() - started)

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new work, finish what is queued, stop."""
        self._closing = True
        deadline = time.perf_counter() + timeout
        while self.queued_rows > 0 and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
