"""``POST /explain``: attributions of a request, computed off the prediction path.

``{"records": [...], "target": "yes", "permutations": 16}`` in; per record
its baseline Shapley values by input column (image inputs by patches of
pixels), the output they explain, the baseline's output and the class (see
:mod:`mlcycle.registry._shapley`); they sum to ``output - base``.

Explaining one row costs ``permutations x (features + 1)`` model
evaluations, so it never shares the prediction path: it runs in worker
processes of its own (their own interpreter, so they never hold the
server's GIL; ``nice`` 10, so the server's threads come first on a busy
CPU), each with its own one-thread ONNX Runtime session per version, and
under its own limit: ``explain_concurrency`` requests explained at once and
as many again waiting; beyond that a request is answered 429 at once, with
``Retry-After``. Predictions never queue behind explanations. The first
explanation starts the workers (a second or two). Explanations are not
logged as predictions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from mlcycle.errors import DataError
from mlcycle.registry import Predictor
from mlcycle.registry._shapley import ShapleyValues, baseline_row, shapley_values
from mlcycle.serve._errors import Refusal
from mlcycle.serve._http import Call, Reply, Route, json_body, json_reply

if TYPE_CHECKING:
    from mlcycle.serve._core import Core
    from mlcycle.serve._deployment import LoadedModel

__all__ = ["Explanations", "explain_options"]

log = logging.getLogger("mlcycle.serve")

MAX_ROWS = 16  # records per /explain request
MAX_PERMUTATIONS = 256
NICE = 10  # how much lower the explaining threads run than the server's


# -- the explaining process (its own interpreter: its own GIL, its own CPU priority) ----------

_MODELS: dict[str, tuple[Predictor, dict[str, Any]]] = {}  # per version: session and baseline
_PROJECT: list[str] = []


def _start_worker(project: str) -> None:
    """Runs first in each explaining process: lower its priority, remember the project."""
    with contextlib.suppress(AttributeError, OSError):  # not permitted, or not POSIX: as is
        os.nice(NICE)
    _PROJECT[:] = [project]


def _explain_in_worker(
    ref: str, feeds: dict[str, Any], target: str | None, permutations: int
) -> ShapleyValues:
    found = _MODELS.get(ref)
    if found is None:
        from mlcycle.store import ProjectStores

        with ProjectStores.open(_PROJECT[0]) as stores:
            version = stores.store.registry.get(ref)
            files = {p: stores.artifacts.read_bytes(s) for p, s in version.files.items()}
        predictor = Predictor(
            files["model.onnx"],
            json.loads(files["signature.json"]),
            name=version.name,
            version=version.version,
            threads=1,
        )
        ood = json.loads(files["ood.json"]) if "ood.json" in files else None
        found = _MODELS[ref] = (predictor, baseline_row(predictor, ood))
    predictor, baseline = found
    return shapley_values(
        predictor, feeds, baseline, target=target, permutations=permutations, seed=0
    )


def explain_options(source: dict[str, Any], prefix: str) -> tuple[str | None, int]:
    """``target`` and ``permutations`` of a request (``prefix``: how the request names them).

    Raises:
        Refusal: 422 naming the field for a value of the wrong kind or out of range.
    """
    permutations = source.get(f"{prefix}permutations", 16)
    if type(permutations) is not int or not 2 <= permutations <= MAX_PERMUTATIONS:
        raise Refusal(
            422,
            f"{prefix}permutations: {permutations!r}; expected an integer from 2 to "
            f"{MAX_PERMUTATIONS}",
        )
    target = source.get(f"{prefix}target")
    if target is not None and type(target) is not str:
        raise Refusal(422, f"{prefix}target: {target!r}; expected a class name (a string)")
    return target, permutations


class Explanations:
    """The ``/explain`` route and the workers, sessions and limit behind it."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.limit = max(1, core.settings.explain_concurrency)
        self.waiting = self.limit  # requests that may wait for a worker
        self.inside = 0  # requests being explained or waiting
        self._executor: ProcessPoolExecutor | None = None  # started by the first explanation

    @property
    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.limit,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(str(self.core.settings.project),),
            )
        return self._executor

    def routes(self) -> list[Route]:
        return [Route("POST", "/explain", "explain", self.explain)]

    async def explain(self, call: Call) -> Reply:
        core = self.core
        body = await json_body(call, core)
        if type(body) is not dict or type(body.get("records")) is not list:
            raise Refusal(400, 'request body: expected {"records": [{column: value, ...}, ...]}')
        records = body["records"]
        if not 1 <= len(records) <= MAX_ROWS:
            raise Refusal(422, f"records: {len(records)} rows; /explain takes 1 to {MAX_ROWS}")
        target, permutations = explain_options(body, "")
        model = core.model_for(None, None, call.headers.get("x-request-key"))
        feeds = core.feeds(model, records)
        started = time.perf_counter()
        result = await self.run(model, feeds, target, permutations)
        return json_reply(
            {
                "model": model.name,
                "version": model.version,
                "method": "baseline Shapley (antithetic permutation sampling)",
                "baseline": "training middle (median, most frequent category, mean image)",
                "permutations": result.permutations,
                "explanations": result.to_records(),
                "seconds": round(time.perf_counter() - started, 4),
            }
        )

    async def run(
        self, model: LoadedModel, feeds: Any, target: str | None, permutations: int
    ) -> ShapleyValues:
        """Explain validated ``feeds`` on a worker; 429 past the limit, 422 for a bad target.

        Raises:
            Refusal: the limit is reached, the rows are too many, or the target
                is not a class of the model.
        """
        rows = len(next(iter(feeds.values())))
        if not 1 <= rows <= MAX_ROWS:
            raise Refusal(422, f"explain: {rows} rows; explanations take 1 to {MAX_ROWS} rows")
        if target is not None and model.predictor.classes is None:
            raise Refusal(
                422, f"target: {model.predictor.ref} is a regression model: it has no classes"
            )
        if self.inside >= self.limit + self.waiting:
            raise Refusal(
                429,
                f"{self.inside} explanations are running or waiting (limit "
                f"{self.limit + self.waiting}); try again shortly",
                {"Retry-After": "1"},
            )
        self.inside += 1
        try:
            result = await self._work(model.predictor.ref, dict(feeds), target, permutations)
        except DataError as exc:
            raise Refusal(422, str(exc)) from None
        finally:
            self.inside -= 1
        return result

    async def _work(
        self, ref: str, feeds: dict[str, Any], target: str | None, permutations: int
    ) -> ShapleyValues:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, _explain_in_worker, ref, feeds, target, permutations
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
