"""The ``ray`` executor: a training job on a Ray cluster, data-parallel with ``train.workers``.

``train.executor: ray`` (or ``mlcycle train --executor ray``) sends the job to
the cluster that ``RAY_ADDRESS`` names (``ray start --head`` prints it), or to
a Ray started in this process on this machine's CPUs when it is unset. Ray is
imported only here, and only when this executor runs (``pip install
'mlcycle[ray]'``).

Nothing on the machine that asks is needed where the job runs: each worker
is given the validated spec, with the metadata store's URL and the artifacts'
URL made absolute, and the AWS variables of this process; it opens the project
from those in a temporary folder of its own. A project on PostgreSQL and S3
therefore trains on any node; one on SQLite and a local folder trains on a
cluster of one machine only, and is refused on a larger one.

With ``train.workers: 1`` the job runs as one Ray task. With ``N > 1`` Ray
Train's ``TorchTrainer`` starts ``N`` replicas (DDP: gloo on CPUs, NCCL on
GPUs); each runs mlcycle's own loop (:func:`~mlcycle.train._loop.fit`) on its
share of every batch, the gradients averaged over all of them, so that ``N``
replicas take the steps one process would. Replica 0 alone writes to the
store: the run, its per-epoch metrics and checkpoints, the model and the test
evaluation, an ordinary run that registers as any other. A run whose driver
or worker was killed continues with ``mlcycle train --resume RUN --executor
ray`` from its last stored checkpoint.

The job's callbacks (``on_start``, ``on_progress``: ``mlcycle train``'s
progress bar) stay on the asking machine: the worker that records the run
posts their events to a small actor, :class:`Mailbox`, which the asking
process reads while it waits.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.errors import MlcycleError, SpecError
from mlcycle.spec import Spec, StoreSpec
from mlcycle.store import ProjectStores
from mlcycle.train._base import Executor
from mlcycle.train._evaluation import report_path
from mlcycle.train._loop import Replicas
from mlcycle.train._run import TrainOutcome, resolve_data

if TYPE_CHECKING:
    from torch import nn

    from mlcycle.project import Project
    from mlcycle.train._executor import TrainJob

__all__ = ["RayExecutor"]

#: What a worker needs of this process's environment to reach the stores.
PASSED_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "MLCYCLE_ACTOR",
)


def _ray() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - the extra is part of the test environment
        raise SpecError(
            "train.executor: 'ray' needs Ray Train: pip install 'mlcycle[ray]'"
        ) from None
    return ray


def connect() -> Any:
    """The ``ray`` module, connected to ``RAY_ADDRESS`` or to a Ray started here."""
    ray = _ray()
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:  # never a cluster someone else started on this machine
            ray.init(
                address="local",
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
    return ray


def one_machine_only(ray: Any, local: bool) -> None:
    """Refuse a project kept on this machine's disk when the cluster has other nodes.

    Raises:
        SpecError: ``local`` and the cluster has more than one live node.
    """
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if local and len(nodes) > 1:
        raise SpecError(
            f"store.url / artifacts.uri: this project keeps its metadata or artifacts on "
            f"this machine's disk (SQLite, a folder), which the other nodes of this "
            f"{len(nodes)}-node Ray cluster cannot read: the ray executor runs such a "
            "project on a one-machine cluster only; use PostgreSQL (store.url) and S3 "
            "(artifacts.uri) for a cluster"
        )


@dataclass(frozen=True)
class Portable:
    """A project as a process elsewhere opens it: the spec with absolute store locations.

    Attributes:
        spec: the project's spec; ``store.url`` and ``artifacts.uri`` are absolute.
        env: the variables of this process a worker sets (AWS credentials, actor).
        local: whether the stores live on this machine's disk (SQLite, a folder).
    """

    spec: Spec
    env: dict[str, str]
    local: bool

    @classmethod
    def of(cls, project: Project) -> Portable:
        url, uri = ProjectStores.locations(project.root, project.spec)
        spec = project.spec.model_copy(
            update={
                "store": StoreSpec(url=url),
                "artifacts": project.spec.artifacts.model_copy(update={"uri": uri}),
            }
        )
        env = {name: os.environ[name] for name in PASSED_ENV if os.environ.get(name)}
        env.setdefault("MLCYCLE_ACTOR", project.actor)
        local = url.startswith("sqlite") or "://" not in uri or uri.startswith("file://")
        return cls(spec, env, local)

    @contextmanager
    def open(self) -> Iterator[Project]:
        """The project, opened in a temporary folder of this process."""
        from mlcycle.project import Project

        os.environ.update(self.env)
        root = Path(tempfile.mkdtemp(prefix="mlcycle-ray-"))
        try:
            with Project(root, self.spec) as project:
                yield project
        finally:
            shutil.rmtree(root, ignore_errors=True)


class Mailbox:
    """What the recording worker tells the asking process: ``(kind, payload)`` events.

    ``start`` (the run's id), ``progress`` (an :class:`~mlcycle.train.EpochProgress`)
    and ``outcome`` (the finished run, from the data-parallel replica 0). It runs
    as a Ray actor of no CPU.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def put(self, kind: str, payload: Any) -> None:
        self.events.append((kind, payload))

    def take(self) -> list[tuple[str, Any]]:
        events, self.events = self.events, []
        return events


def _posting(job: TrainJob, mailbox: Any) -> TrainJob:
    """``job`` with callbacks that post their events to ``mailbox`` (an actor handle)."""
    return replace(
        job,
        on_start=lambda run_id: mailbox.put.remote("start", run_id),
        on_progress=lambda progress: mailbox.put.remote("progress", progress),
    )


def _one(portable: Portable, job: TrainJob, mailbox: Any) -> TrainOutcome:
    """A Ray task: the whole job in one process."""
    with portable.open() as project:
        return _posting(job, mailbox).run_here(project)


def _prepare_model(model: nn.Module) -> nn.Module:
    import ray.train.torch

    return ray.train.torch.prepare_model(model, move_to_device=False)


def _replica(config: dict[str, Any]) -> None:
    """Each Ray Train worker: replica 0 trains and records the run, the others train along."""
    import ray.train

    context = ray.train.get_context()
    replicas = Replicas(context.get_world_rank(), context.get_world_size(), _prepare_model)
    portable: Portable = config["portable"]
    job: TrainJob = config["job"]
    mailbox = config["mailbox"]
    with portable.open() as project:
        if replicas.leader:
            outcome = _posting(job, mailbox).run_here(project, replicas)
            done = {
                "run_id": outcome.run_id,
                "dataset": outcome.dataset,
                "test": outcome.test,
                "summary": outcome.summary,
            }
            ray.get(mailbox.put.remote("outcome", json.dumps(done, default=str)))
        else:
            job.replicate_here(project, replicas)


def _workers(project: Project, job: TrainJob) -> int:
    if job.resume is not None:
        record = project.runs.get(job.resume)
        return int(record.params.get("train", {}).get("workers", 1))
    return project.spec.with_overrides(job.overrides).train.workers


def _mlcycle_error(exc: BaseException) -> MlcycleError | None:
    """The mlcycle error a failed Ray task or training was caused by, if one was."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        error = stack.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, MlcycleError):
            cause = getattr(error, "cause", None)  # a RayTaskError that is also one
            return cause if isinstance(cause, MlcycleError) else error
        stack += [error.__cause__, error.__context__, getattr(error, "cause", None)]
        failures = getattr(error, "worker_failures", None)
        if isinstance(failures, dict):
            stack += list(failures.values())
        stack += [e for e in getattr(error, "exceptions", ()) if isinstance(e, BaseException)]
    return None


class RayExecutor(Executor):
    """Runs the job on a Ray cluster: one task, or ``train.workers`` DDP replicas."""

    name = "ray"

    def run(self, project: Project, job: TrainJob) -> TrainOutcome:
        portable = Portable.of(project)
        if job.resume is None:  # the version is chosen here: a source path is this machine's
            spec = project.spec.with_overrides(job.overrides)
            job = replace(job, data=resolve_data(project, job.data or spec.train.data))
        workers = _workers(project, job)
        callbacks = job
        job = replace(job, on_start=None, on_progress=None)  # they stay on this machine
        with warnings.catch_warnings():  # Ray's own deprecations are not the user's to fix
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray(\.|$)")
            return self._on_ray(project, portable, job, callbacks, workers)

    def _on_ray(
        self, project: Project, portable: Portable, job: TrainJob, callbacks: TrainJob, workers: int
    ) -> TrainOutcome:
        ray = connect()
        one_machine_only(ray, portable.local)
        mailbox = ray.remote(num_cpus=0)(Mailbox).remote()
        done: dict[str, Any] = {}

        def work() -> None:
            try:
                if workers > 1:
                    self._data_parallel(ray, portable, job, workers, mailbox)
                else:
                    task = ray.remote(num_cpus=1, max_retries=0)(_one)
                    done["outcome"] = ray.get(task.remote(portable, job, mailbox))
            except BaseException as exc:  # handed to the caller below
                done["error"] = exc

        worker = threading.Thread(target=work, name="mlcycle-ray-train", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.25)
                for kind, payload in ray.get(mailbox.take.remote()):
                    if kind == "start" and callbacks.on_start is not None:
                        callbacks.on_start(payload)
                    elif kind == "progress" and callbacks.on_progress is not None:
                        callbacks.on_progress(payload)
                    elif kind == "outcome":
                        fields = json.loads(payload)
                        done["outcome"] = TrainOutcome(
                            fields["run_id"],
                            fields["dataset"],
                            fields["test"],
                            fields["summary"],
                            None,
                        )
        finally:
            ray.kill(mailbox)
        if "error" in done:
            cause = _mlcycle_error(done["error"])
            if cause is None:
                raise done["error"]
            raise cause from None
        return _with_local_report(project, done["outcome"])

    def _data_parallel(
        self, ray: Any, portable: Portable, job: TrainJob, workers: int, mailbox: Any
    ) -> None:
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        wanted = portable.spec.train.device
        gpus = ray.cluster_resources().get("GPU", 0)
        use_gpu = wanted != "cpu" and not wanted.startswith("mps") and gpus >= workers
        if wanted.startswith("cuda") and not use_gpu:
            raise SpecError(
                f"train.device: {wanted!r} with train.workers: {workers} needs {workers} GPUs; "
                f"the Ray cluster has {gpus:g}"
            )
        if use_gpu and job.resume is None:
            job = replace(job, device="cuda")  # each worker sees its own GPU as cuda
        storage = tempfile.mkdtemp(prefix="mlcycle-ray-train-")
        try:
            trainer = TorchTrainer(
                _replica,
                train_loop_config={"portable": portable, "job": job, "mailbox": mailbox},
                torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
                scaling_config=ScalingConfig(
                    num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}
                ),
                run_config=RunConfig(
                    name="mlcycle-train",
                    storage_path=storage,
                    failure_config=FailureConfig(max_failures=0),
                ),
            )
            trainer.fit()
        finally:
            shutil.rmtree(storage, ignore_errors=True)


def _with_local_report(project: Project, outcome: TrainOutcome) -> TrainOutcome:
    """The outcome with its HTML report copied from the artifact store to this machine."""
    record = project.runs.get(outcome.run_id)
    if "report.html" not in record.artifacts:
        return replace(outcome, report=None)
    path = report_path(project, outcome.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(project.artifacts.read_bytes(record.artifacts["report.html"]))
    return replace(outcome, report=path, summary={**outcome.summary, "report": str(path)})
