"""What a server runs: the versions it follows, how traffic is split, hot swaps.

A :class:`Deployment` follows an alias (``fraud@champion``) and optionally a
second one as canary (a share of traffic, sticky by request key) or shadow
(mirrored, never answered with). When an alias moves, the new version is
loaded and its hashes checked on a worker thread, warmed up, and swapped in
with one reference assignment: requests already queued finish on the old
version, new ones go to the new, and every answer names the version that
produced it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import MlcycleError, NotFoundError
from mlcycle.registry import OODDetector, Predictor, load
from mlcycle.registry._ort import ORT_ERRORS, from_ort, ort_errors
from mlcycle.serve._batcher import Batcher, Feeds, Outputs
from mlcycle.serve._guard import LOOPBACK
from mlcycle.store import ProjectStores, StoreHandle, read_traffic

if TYPE_CHECKING:
    from mlcycle.store import ModelVersionRecord, Traffic

__all__ = [
    "OOD_FLAG",
    "OOD_SCORE",
    "Deployment",
    "LoadedModel",
    "ServeSettings",
    "check_servable",
]

# Outputs a version with an OOD detector adds to its graph's, row by row.
OOD_SCORE = "ood_score"
OOD_FLAG = "ood"

log = logging.getLogger("mlcycle.serve")

# While following an alias keeps failing the same way, say so at most this often.
REPEAT_FAILURE_S = 60.0


@dataclass(frozen=True)
class ServeSettings:
    """Knobs of one server process.

    ``allowed_hosts``: the ``Host`` names the server answers to (421 for
    others); loopback by default, :func:`~mlcycle.serve._guard.allowed_hosts`
    adds the bind address and more, ``("*",)`` allows any.

    ``max_connections``, ``header_timeout_s``, ``body_timeout_s``,
    ``keepalive_timeout_s`` and ``max_pending_body_bytes`` bound what slow or
    numerous clients hold (:mod:`~mlcycle.serve._limits`).
    """

    project: Path
    ref: str
    canary: str | None = None
    canary_percent: float = 0.0
    shadow: str | None = None
    max_batch_rows: int = 64
    max_delay_ms: float = 2.0
    max_queue_rows: int = 4096
    admission_wait_s: float = 1.0  # a request the queue has no room for waits, unread, this long
    max_request_rows: int = 1024
    max_body_bytes: int = 8 * 1024 * 1024
    poll_s: float = 2.0
    threads: int | None = None
    admin_token: str | None = None
    allowed_hosts: tuple[str, ...] = LOOPBACK
    log_flush_s: float = 1.0
    log_max_rows: int | None = None  # rows the log holds unwritten; None: its default
    feedback_token: str | None = None  # when set, /feedback needs it as a Bearer token
    # what slow or many clients may hold (mlcycle.serve._limits)
    max_connections: int = 2048
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 5.0
    max_pending_body_bytes: int = 64 * 1024 * 1024
    grpc_port: int | None = None  # the Open Inference Protocol over gRPC too, on this port
    grpc_host: str = "127.0.0.1"
    explain_concurrency: int = 1  # /explain requests explained at once (as many more may wait)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    """One version in memory with its own batcher."""

    predictor: Predictor
    batcher: Batcher
    ood: OODDetector | None = None

    @property
    def version(self) -> int:
        assert self.predictor.version is not None
        return self.predictor.version

    @property
    def name(self) -> str:
        return self.predictor.name

    async def infer(self, feeds: Feeds, rows: int) -> Outputs:
        return await self.batcher.submit(feeds, rows)


def check_servable(project: StoreHandle, settings: ServeSettings) -> ModelVersionRecord:
    """The primary version, once every version the settings name resolves and its files are intact.

    Run before a server starts, so that a missing alias or artifact is one
    error line instead of a server that starts and dies in its lifespan.

    Raises:
        NotFoundError: a reference, or one of its files, does not exist.
        IntegrityError: a file differs from its recorded hash.
    """
    versions = []
    for ref in (settings.ref, settings.canary, settings.shadow):
        if ref is not None:
            version = project.store.registry.get(ref)
            for sha in version.files.values():
                project.artifacts.verify(sha)
            versions.append(version)
    return versions[0]


def _sample_feeds(predictor: Predictor) -> Feeds:
    feeds: Feeds = {}
    for spec in predictor.signature["inputs"]:
        if spec["kind"] == "categorical":
            feeds[spec["name"]] = np.array([""], dtype=object)
        elif spec["kind"] == "image":
            feeds[spec["name"]] = np.zeros((1, *spec["shape"][1:]), dtype=np.float32)
        else:
            feeds[spec["name"]] = np.zeros(1, dtype=np.float32)
    return feeds


class Deployment:
    """The primary version (and an optional canary or shadow) a server answers with."""

    def __init__(
        self,
        settings: ServeSettings,
        executor: ThreadPoolExecutor,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.on_batch = on_batch
        self.primary: LoadedModel | None = None
        self.second: LoadedModel | None = None
        self.swaps = 0
        # Why there is nothing to answer with (the version served was deleted), else None.
        self.gone: str | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stores: ProjectStores | None = None
        self._draining: set[asyncio.Task[None]] = set()
        self.mode = "canary" if settings.canary else ("shadow" if settings.shadow else "off")
        self.canary_percent = settings.canary_percent
        self.follow_failures = 0  # polls in a row that could not follow the aliases
        self._failure: tuple[str, float] | None = None  # (what failed, when it was last logged)

    def _load(self, ref: str) -> LoadedModel:
        predictor = load(ref, project=self.stores, threads=self.settings.threads)
        outputs = [o.name for o in predictor.session.get_outputs()]
        with ort_errors(predictor.ref):
            predictor.session.run(outputs, _sample_feeds(predictor))  # warm up before serving
        ood = self._ood_detector(predictor)
        failed: list[bool] = []

        def run(feeds: Feeds) -> Outputs:
            try:
                answers = predictor.session.run(outputs, feeds)
            except ORT_ERRORS as exc:
                raise from_ort(exc, predictor.ref) from exc
            answer = dict(zip(outputs, answers, strict=True))
            if ood is not None:
                try:
                    scores = ood.score(feeds)
                except Exception:  # the flags are monitoring: never fail an answer
                    if not failed:  # say it once, not per request
                        log.exception("%s: OOD scoring failed; answering without", predictor.ref)
                        failed.append(True)
                else:
                    answer[OOD_SCORE] = scores.score.astype(np.float32)
                    answer[OOD_FLAG] = scores.flagged
            return answer

        batcher = Batcher(
            run,
            self.executor,
            max_batch_rows=self.settings.max_batch_rows,
            max_delay_ms=self.settings.max_delay_ms,
            max_queue_rows=self.settings.max_queue_rows,
            on_batch=self.on_batch,
        )
        return LoadedModel(predictor, batcher, ood)

    def _ood_detector(self, predictor: Predictor) -> OODDetector | None:
        """The version's ``ood.json`` detector (hash checked), if it has one and it is usable.

        A file whose bytes differ from the recorded hash stops the load, as for
        every other file of a version; a document this server cannot read
        (another format, say) only turns the flags off, with an error logged.
        """
        files = self.stores.store.registry.get(predictor.ref).files
        if "ood.json" not in files:
            return None
        data = self.stores.artifacts.read_bytes(files["ood.json"])
        try:
            detector = OODDetector.from_dict(json.loads(data))
            detector.score(_sample_feeds(predictor))  # takes this signature's inputs
        except ValueError as exc:  # DataError and JSONDecodeError are ValueErrors
            log.error("%s: ood.json is unusable, serving without OOD flags: %s", predictor.ref, exc)
            return None
        return detector

    @property
    def stores(self) -> ProjectStores:
        """The project's stores alone: a server never opens the data stack of a ``Project``."""
        if self._stores is None:
            self._stores = ProjectStores.open(self.settings.project)
        return self._stores

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.primary = await loop.run_in_executor(None, self._load, self.settings.ref)
        second = self.settings.canary or self.settings.shadow
        if second is not None:
            self.second = await loop.run_in_executor(None, self._load, second)
        elif self.settings.poll_s > 0:
            try:
                await self.check_traffic()
            except Exception:  # serve the primary alone rather than not at all
                log.exception("could not read the rollout traffic split of %s", self.settings.ref)
        if self.settings.poll_s > 0:
            self._watch = loop.create_task(self._follow_aliases(), name="alias-watch")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for model in (self.primary, self.second):
            if model is not None:
                await model.batcher.drain()
        if self._stores is not None:
            self._stores.close()

    @property
    def ready(self) -> bool:
        return self.primary is not None

    @property
    def name(self) -> str:
        assert self.primary is not None
        return self.primary.name

    def route(self, key: str | None) -> LoadedModel:
        """The model that answers: the canary for its share of keys, else the primary."""
        assert self.primary is not None
        if self.mode == "canary" and self.second is not None and self.canary_percent > 0:
            bucket = (zlib.crc32(key.encode()) % 10_000) / 100 if key else random.random() * 100
            if bucket < self.canary_percent:
                return self.second
        return self.primary

    def shadow(self) -> LoadedModel | None:
        return self.second if self.mode == "shadow" else None

    @property
    def follows_rollout(self) -> bool:
        """No explicit ``--canary``/``--shadow``: the loop's traffic split decides."""
        return not (self.settings.canary or self.settings.shadow)

    def _traffic(self) -> Traffic:
        return read_traffic(self.stores.store, self.settings.ref.split("@")[0])

    async def check_traffic(self) -> bool:
        """Apply the newest rollout traffic split (load the challenger it names); True if changed."""
        loop = asyncio.get_running_loop()
        traffic = await loop.run_in_executor(None, self._traffic)
        mode, version, percent = traffic.mode, traffic.version, traffic.percent
        if mode == "off" or version is None:
            changed = self.mode != "off"
            self.mode, self.canary_percent = "off", 0.0
            if changed:
                log.info("rollout traffic off: the primary answers everything")
            return changed
        if self.second is None or self.second.version != version:
            name = self.settings.ref.split("@")[0]
            self.second = await loop.run_in_executor(None, self._load, f"{name}@{version}")
        changed = (self.mode, self.canary_percent) != (mode, percent)
        self.mode, self.canary_percent = mode, percent
        if changed:
            log.info("rollout traffic: %s %.1f%% to version %s", mode, percent, version)
        return changed

    def by_version(self, version: int) -> LoadedModel | None:
        for model in (self.primary, self.second):
            if model is not None and model.version == version:
                return model
        return None

    async def check_aliases(self) -> bool:
        """Load and swap in new versions if the followed aliases moved; True if swapped.

        A version deleted from the registry is no longer answered with: the
        server follows its alias (or ``NAME``, the newest version) to the
        version it names now; a reference that names nothing any more (an
        explicit ``NAME@3``) leaves nothing to answer with (:attr:`gone`).
        """
        loop = asyncio.get_running_loop()
        swapped = False
        for attribute, ref in (("primary", self.settings.ref), ("second", self._second_ref)):
            if ref is None:
                continue
            current: LoadedModel | None = getattr(self, attribute)
            try:
                version = await loop.run_in_executor(None, self._resolve, ref)
            except NotFoundError as exc:
                if current is not None:
                    setattr(self, attribute, None)
                    self._retire(current)
                    if attribute == "primary":
                        self.gone = f"{ref} is not served any more: {exc}"
                    log.warning(
                        "%s: %s; no longer answering with %s", ref, exc, current.predictor.ref
                    )
                    swapped = True
                continue
            if current is not None and version == current.version:
                continue
            if (
                attribute == "primary"
                and self.second is not None
                and self.second.version == version
            ):
                fresh = self.second  # a promoted canary: already loaded, verified and warm
            else:
                fresh = await loop.run_in_executor(
                    None, self._load, f"{ref.split('@')[0]}@{version}"
                )
            setattr(self, attribute, fresh)  # one assignment: the swap
            if attribute == "primary":
                self.gone = None
            self.swaps += 1
            swapped = True
            if current is not None and not await loop.run_in_executor(None, self._exists, current):
                log.warning(
                    "%s was deleted from the registry; now serving %s for %s",
                    current.predictor.ref,
                    fresh.predictor.ref,
                    ref,
                )
            else:
                log.info("now serving %s for %s", fresh.predictor.ref, ref)
            if current is not None:
                self._retire(current)
        return swapped

    def _retire(self, model: LoadedModel) -> None:
        """Let requests already queued on ``model`` finish, in the background."""
        task = asyncio.get_running_loop().create_task(model.batcher.drain())
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    def _exists(self, model: LoadedModel) -> bool:
        try:
            self.stores.store.registry.get(model.predictor.ref)
        except NotFoundError:
            return False
        return True

    @property
    def _second_ref(self) -> str | None:
        return self.settings.canary or self.settings.shadow

    def _resolve(self, ref: str) -> int:
        return self.stores.store.registry.get(ref).version

    async def _follow_aliases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_s)
            try:
                await self.check_aliases()
                if self.follows_rollout:
                    await self.check_traffic()
            except Exception as exc:  # keep serving the version in hand; say why
                self._follow_failed(exc)
            else:
                if self._failure is not None:
                    log.info("following %s again", self.settings.ref)
                self.follow_failures, self._failure = 0, None

    def _follow_failed(self, exc: Exception) -> None:
        """Log a failure to follow the aliases in one line: when it starts or changes, then
        once every :data:`REPEAT_FAILURE_S` while it lasts (the poll retries every few seconds).

        An :class:`~mlcycle.errors.MlcycleError` (a corrupt or missing artifact) is its
        message; anything else is a bug and its first line carries the traceback.
        """
        self.follow_failures += 1
        what, now = f"{type(exc).__name__}: {exc}", time.monotonic()
        if self._failure is not None:
            last_what, last_logged = self._failure
            if what == last_what and now - last_logged < REPEAT_FAILURE_S:
                return
        first = self._failure is None or self._failure[0] != what
        self._failure = (what, now)
        serving = self.primary.predictor.ref if self.primary is not None else "nothing"
        n = self.follow_failures
        log.error(
            "could not follow %s (%d poll%s in a row), still serving %s: %s",
            self.settings.ref,
            n,
            "" if n == 1 else "s",
            serving,
            str(exc).replace("\n", " ") if isinstance(exc, MlcycleError) else what,
            exc_info=exc if first and not isinstance(exc, MlcycleError) else None,
        )
