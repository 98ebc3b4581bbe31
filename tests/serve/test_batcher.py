"""Dynamic batching in isolation: merging, splitting, overload, errors, draining."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from mlcycle.registry import to_feeds
from mlcycle.serve import Batcher, Overloaded


def _double(calls: list[int]) -> Any:
    def run(feeds: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        calls.append(len(feeds["x"]))
        return {"y": feeds["x"] * 2}

    return run


def test_concurrent_requests_are_merged_and_split_back_in_order() -> None:
    calls: list[int] = []

    async def main() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(_double(calls), pool, max_batch_rows=64, max_delay_ms=20)
            first = await batcher.submit({"x": np.array([0.0])}, 1)  # a lone request: no company
            results = await asyncio.gather(
                *(batcher.submit({"x": np.array([float(i), float(i) + 0.5])}, 2) for i in range(10))
            )
            await batcher.drain()
            return [first, *results]

    first, *rest = asyncio.run(main())
    assert first["y"].tolist() == [0.0]
    for i, result in enumerate(rest):
        assert result["y"].tolist() == [2.0 * i, 2.0 * i + 1.0]
    assert calls[0] == 1 and sum(calls) == 21 and len(calls) < 11


SIGNATURE = {
    "task": "regression",
    "inputs": [
        {"name": "a", "kind": "numeric", "dtype": "float32", "shape": [-1]},
        {"name": "b", "kind": "numeric", "dtype": "float32", "shape": [-1]},
    ],
}


def test_packed_and_unpacked_requests_merge_into_the_same_rows() -> None:
    """Requests whose inputs came as one block merge with one concatenation, others per input."""
    seen: list[Any] = []

    def run(feeds: Any) -> dict[str, np.ndarray[Any, Any]]:
        seen.append(feeds)
        return {"y": feeds["a"] * 10 + feeds["b"]}

    packed = [to_feeds([{"a": float(i), "b": i + 0.5}], SIGNATURE) for i in range(6)]
    plain = [to_feeds([{"a": float(i), "b": None}], SIGNATURE) for i in range(6, 9)]  # no block
    assert all(f.block is not None for f in packed) and all(f.block is None for f in plain)

    async def main(parts: list[Any]) -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(run, pool, max_batch_rows=64, max_delay_ms=20)
            results = await asyncio.gather(*(batcher.submit(f, 1) for f in parts))
            await batcher.drain()
            return results

    results = asyncio.run(main(packed))
    assert [r["y"].tolist() for r in results] == [[i * 10 + i + 0.5] for i in range(6)]
    merged = seen[-1]
    assert len(merged["a"]) == 6 and merged.block is not None  # merged as a block
    assert list(merged) == ["a", "b"] and np.shares_memory(merged["a"], merged.block)
    results = asyncio.run(main([*packed[:2], *plain]))
    assert [r["y"].tolist()[0] for r in results[:2]] == [0.5, 11.5]
    assert all(np.isnan(r["y"][0]) for r in results[2:])
    assert getattr(seen[-1], "block", None) is None and len(seen[-1]["a"]) == 5


def test_a_full_queue_refuses_at_once() -> None:
    async def main() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:

            def slow(feeds: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:

                time.sleep(0.05)
                return {"y": feeds["x"]}

            batcher = Batcher(slow, pool, max_batch_rows=1, max_queue_rows=2, max_delay_ms=0)
            outcome = await asyncio.gather(
                *(batcher.submit({"x": np.array([1.0])}, 1) for _ in range(6)),
                return_exceptions=True,
            )
            await batcher.drain()
            return outcome

    outcome = asyncio.run(main())
    refused = [o for o in outcome if isinstance(o, Overloaded)]
    assert refused and all(o.retry_after > 0 for o in refused)
    assert sum(isinstance(o, dict) for o in outcome) >= 2


def test_an_error_reaches_every_request_of_the_batch_and_the_batcher_goes_on() -> None:
    async def main() -> tuple[list[Any], Any]:
        with ThreadPoolExecutor(1) as pool:
            state = {"fail": True}

            def flaky(feeds: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
                if state["fail"]:
                    state["fail"] = False
                    raise RuntimeError("onnxruntime exploded")
                return {"y": feeds["x"]}

            batcher = Batcher(flaky, pool, max_batch_rows=8)
            failed = await asyncio.gather(
                batcher.submit({"x": np.array([1.0])}, 1), return_exceptions=True
            )
            ok = await batcher.submit({"x": np.array([3.0])}, 1)
            await batcher.drain()
            return failed, ok

    failed, ok = asyncio.run(main())
    assert isinstance(failed[0], RuntimeError) and ok["y"].tolist() == [3.0]


def test_draining_finishes_queued_work_and_refuses_new() -> None:
    async def main() -> tuple[list[Any], BaseException | None]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(_double([]), pool, max_batch_rows=2)
            pending = [
                asyncio.ensure_future(batcher.submit({"x": np.array([float(i)])}, 1))
                for i in range(5)
            ]
            await asyncio.sleep(0)
            await batcher.drain()
            done = await asyncio.gather(*pending)
            try:
                await batcher.submit({"x": np.array([1.0])}, 1)
            except Overloaded as exc:
                return done, exc
            return done, None

    done, refused = asyncio.run(main())
    assert [d["y"].tolist() for d in done] == [[0.0], [2.0], [4.0], [6.0], [8.0]]
    assert isinstance(refused, Overloaded)


@pytest.mark.parametrize("rows", [1, 5])
def test_batches_never_exceed_the_row_cap(rows: int) -> None:
    calls: list[int] = []

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(_double(calls), pool, max_batch_rows=8, max_delay_ms=5)
            await asyncio.gather(*(batcher.submit({"x": np.ones(rows)}, rows) for _ in range(20)))
            await batcher.drain()

    asyncio.run(main())
    assert sum(calls) == 20 * rows
    assert max(calls) <= max(8, rows)


@pytest.mark.parametrize("inline", [True, False])
def test_calls_run_inline_on_one_core_and_on_a_worker_otherwise(inline: bool) -> None:
    """With one core a worker thread cannot run beside the event loop: the call stays inline."""
    threads: list[int] = []

    def run(feeds: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        threads.append(threading.get_ident())
        time.sleep(0.002)  # long enough that the worker would be chosen (INLINE_S is 0.2 ms)
        return {"y": feeds["x"]}

    async def main() -> int:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(run, pool, max_delay_ms=0, inline=inline)
            for _ in range(3):
                await batcher.submit({"x": np.array([1.0])}, 1)
            await batcher.drain()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(threads) == 3
    assert (threads[-1] == loop_thread) is inline
