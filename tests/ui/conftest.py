"""A small real project for the dashboard: two trained iris runs (one registered) and a few more.

The two training runs are real (two epochs of iris, evaluated, with their
reports); the others are recorded through the same run API the stages use,
with known test metrics, tags and curves, so that filters, sorting and pages
have an exact answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlcycle import Project
from mlcycle.serve import serve_in_thread
from mlcycle.train import train
from mlcycle.ui import create_app
from mlcycle.workflow import register

if TYPE_CHECKING:
    from mlcycle.monitor import MonitorResult

TOKEN = "ui-test-token-5f2a"
# name -> (experiment, status, tags, test accuracy): the recorded runs besides the trained two
RECORDED = {
    "sweep-0": ("sweep", "finished", {"team": "a"}, 0.50),
    "sweep-1": ("sweep", "finished", {"team": "a"}, 0.70),
    "sweep-2": ("sweep", "finished", {"team": "b"}, 0.90),
    "sweep-3": ("sweep", "failed", {"team": "b"}, 0.95),
    "sweep-4": ("sweep", "finished", {"team": "b"}, 0.99),
}


WATCHED = "iris-watched"  # a model monitored twice (its own name: the iris page stays unmonitored)


@dataclass(frozen=True)
class Site:
    project: Project
    url: str
    trained: list[str]  # the two training runs' ids, oldest first
    recorded: dict[str, str]  # name -> id
    model: str


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root: Path = tmp_path_factory.mktemp("ui") / "project"
    project = Project.init(root, name="uitest")
    trained = []
    for seed in (0, 1):
        outcome = train(project, data="sklearn:iris", overrides={"max_epochs": 2, "seed": seed})
        trained.append(outcome.run_id)
    version = register(project, trained[0], "iris", alias="champion")
    assert version.version == 1
    register(project, trained[1], "iris")
    recorded = {}
    for name, (experiment, status, tags, accuracy) in RECORDED.items():
        with project.runs.start(
            name, params={"lr": accuracy / 10}, tags=tags, experiment=experiment
        ) as run:
            run.log_metrics_rows(
                (epoch, {"val_loss": 1.0 - accuracy * epoch / 3}) for epoch in range(1, 4)
            )
            run.update_summary({"test": {"accuracy": accuracy}})
            if status != "finished":
                run.finish(status)  # type: ignore[arg-type]
        recorded[name] = run.id
    app = create_app(project, admin_token=TOKEN)
    with serve_in_thread(app) as url:
        yield Site(project=project, url=url, trained=trained, recorded=recorded, model="iris")
    project.close()


@pytest.fixture(scope="session")
def watched(site: Site, tmp_path_factory: pytest.TempPathFactory) -> list[MonitorResult]:
    """:data:`WATCHED` monitored twice for real (unseen rows, then a shifted petal length).

    Its v1 is the first trained run; v2, the second, is registered as a variant pruned
    from v1 (the registry's own ``derived_from``: pruning would train again).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mlcycle.monitor import monitor

    folder = tmp_path_factory.mktemp("watched")
    register(site.project, site.trained[0], WATCHED, alias="champion")
    variant = {"model": WATCHED, "version": 1, "method": "prune", "params": {"ratio": 0.5}}
    assert register(site.project, site.trained[1], WATCHED, derived_from=variant).version == 2
    splits = site.project.datasets.load_split("iris@1")
    results = []
    for n, (split, factor) in enumerate((("validation", 1.0), ("train", 1.8))):
        table = splits[split]
        i = table.column_names.index("petal_length_cm")
        table = table.set_column(i, "petal_length_cm", pc.multiply(table.column(i), factor))
        pq.write_table(table, folder / f"window{n}.parquet")
        results.append(
            monitor(
                site.project,
                f"{WATCHED}@champion",
                current=folder / f"window{n}.parquet",
                html=folder / f"window{n}.html",
            )
        )
    return results


@pytest.fixture(scope="session")
def looped(site: Site, watched: list[MonitorResult]) -> str:
    """:data:`WATCHED` in a loop's rollout: a trigger, v2 judged by the gate as the challenger,
    a canary, routine checks.

    Recorded through the store's loop records, as the loop writes them (running the
    loop would retrain); returns the model's name.
    """
    from mlcycle.store import LoopState, Traffic, set_traffic, write_state

    store, actor = site.project.store, "loop"
    challenger = 2
    write_state(store, WATCHED, LoopState(), action="checked", reason="healthy", actor=actor)
    write_state(
        store,
        WATCHED,
        LoopState(phase="triggered", cycle=1, champion=1, triggers=["drift"]),
        action="triggered",
        reason="feature drift in petal_length_cm",
        actor=actor,
    )
    store.record_event(
        "gate.promoted",
        "model",
        WATCHED,
        actor=actor,
        reason="accuracy +0.05",
        details={
            "challenger_version": 2,
            "champion_version": 1,
            "metric": "accuracy",
            "champion": 0.9,
            "challenger": 0.95,
            "delta": 0.05,
            "low": 0.01,
            "high": 0.09,
            "rows": 120,
            "promote": True,
        },
    )
    set_traffic(store, WATCHED, Traffic(challenger, "canary", 10.0), actor=actor, reason="step 1/2")
    for _ in range(3):  # routine checks after the decision are not decisions
        write_state(
            store,
            WATCHED,
            LoopState(phase="rollout", cycle=1),
            action="checked",
            reason="ok",
            actor=actor,
        )
    return WATCHED


@pytest.fixture(scope="session")
def served(site: Site, looped: str) -> str:
    """:data:`WATCHED` in the prediction log: ten answered requests of v1 (1 to 10 ms, one
    of three rows), two failed, three shadowed by v2, a batch job's 50 rows, and an answer
    two hours old."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from mlcycle.predictions import LoggedBatch, PredictionLog
    from mlcycle.store import STATE_DIR

    log = PredictionLog(site.project.root / STATE_DIR / "log")

    def request(version: int, source: str, rows: int, ms: float, **kw: object) -> None:
        x = np.arange(rows, dtype=np.float32)
        ids = [f"{source}-{ms}-{i}" for i in range(rows)]
        log.append(LoggedBatch(WATCHED, version, source, ids, {"x": x}, ms, **kw))  # type: ignore[arg-type]

    for ms in range(1, 11):
        request(1, "serve", 3 if ms == 5 else 1, float(ms))
    request(1, "error", 1, 0.5)
    request(1, "error", 1, 0.7)
    for ms in (2.0, 3.0, 4.0):
        request(2, "shadow", 1, ms)
    request(1, "batch", 50, 80.0)
    request(1, "serve", 1, 999.0, at=datetime.now(UTC) - timedelta(hours=2))
    log.close()
    return WATCHED
