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
import logging
import random
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle.project import Project
from mlcycle.registry import Predictor, load
from mlcycle.serve._batcher import Batcher, Feeds, Outputs

__all__ = ["Deployment", "LoadedModel", "ServeSettings"]

log = logging.getLogger("mlcycle.serve")


@dataclass(frozen=True)
class ServeSettings:
    """Knobs of one server process."""

    project: Path
    ref: str
    canary: str | None = None
    canary_percent: float = 0.0
    shadow: str | None = None
    max_batch_rows: int = 64
    max_delay_ms: float = 2.0
    max_queue_rows: int = 4096
    max_request_rows: int = 1024
    max_body_bytes: int = 8 * 1024 * 1024
    poll_s: float = 2.0
    threads: int | None = None
    admin_token: str | None = None
    log_flush_s: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    """One version in memory with its own batcher."""

    predictor: Predictor
    batcher: Batcher

    @property
    def version(self) -> int:
        assert self.predictor.version is not None
        return self.predictor.version

    @property
    def name(self) -> str:
        return self.predictor.name

    async def infer(self, feeds: Feeds, rows: int) -> Outputs:
        return await self.batcher.submit(feeds, rows)


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
        self._watch: asyncio.Task[None] | None = None
        self._project: Project | None = None
        self._draining: set[asyncio.Task[None]] = set()

    def _load(self, ref: str) -> LoadedModel:
        predictor = load(ref, project=self.project, threads=self.settings.threads)
        outputs = [o.name for o in predictor.session.get_outputs()]
        predictor.session.run(outputs, _sample_feeds(predictor))  # warm up before serving

        def run(feeds: Feeds) -> Outputs:
            return dict(zip(outputs, predictor.session.run(outputs, feeds), strict=True))

        batcher = Batcher(
            run,
            self.executor,
            max_batch_rows=self.settings.max_batch_rows,
            max_delay_ms=self.settings.max_delay_ms,
            max_queue_rows=self.settings.max_queue_rows,
            on_batch=self.on_batch,
        )
        return LoadedModel(predictor, batcher)

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = Project.open(self.settings.project)
        return self._project

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.primary = await loop.run_in_executor(None, self._load, self.settings.ref)
        second = self.settings.canary or self.settings.shadow
        if second is not None:
            self.second = await loop.run_in_executor(None, self._load, second)
        if self.settings.poll_s > 0:
            self._watch = loop.create_task(self._follow_aliases(), name="alias-watch")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for model in (self.primary, self.second):
            if model is not None:
                await model.batcher.drain()
        if self._project is not None:
            self._project.close()

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
        if self.settings.canary and self.second is not None and self.settings.canary_percent > 0:
            bucket = (zlib.crc32(key.encode()) % 10_000) / 100 if key else random.random() * 100
            if bucket < self.settings.canary_percent:
                return self.second
        return self.primary

    def shadow(self) -> LoadedModel | None:
        return self.second if self.settings.shadow else None

    def by_version(self, version: int) -> LoadedModel | None:
        for model in (self.primary, self.second):
            if model is not None and model.version == version:
                return model
        return None

    async def check_aliases(self) -> bool:
        """Load and swap in new versions if the followed aliases moved; True if swapped."""
        loop = asyncio.get_running_loop()
        swapped = False
        for attribute, ref in (("primary", self.settings.ref), ("second", self._second_ref)):
            if ref is None:
                continue
            current: LoadedModel | None = getattr(self, attribute)
            version = await loop.run_in_executor(None, self._resolve, ref)
            if current is not None and version == current.version:
                continue
            fresh = await loop.run_in_executor(None, self._load, f"{ref.split('@')[0]}@{version}")
            setattr(self, attribute, fresh)  # one assignment: the swap
            self.swaps += 1
            swapped = True
            log.info("now serving %s for %s", fresh.predictor.ref, ref)
            if current is not None:  # queued requests finish on the old version
                task = loop.create_task(current.batcher.drain())
                self._draining.add(task)
                task.add_done_callback(self._draining.discard)
        return swapped

    @property
    def _second_ref(self) -> str | None:
        return self.settings.canary or self.settings.shadow

    def _resolve(self, ref: str) -> int:
        return self.project.store.registry.get(ref).version

    async def _follow_aliases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_s)
            try:
                await self.check_aliases()
            except Exception:  # keep serving the version in hand; say why
                log.exception(
                    "could not follow %s; still serving what is loaded", self.settings.ref
                )
