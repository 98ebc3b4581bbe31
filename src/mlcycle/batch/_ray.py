"""Batch scoring on a Ray cluster: many Parquet files, one ONNX Runtime session per worker.

:func:`score_files_on_ray` spreads the files of a folder (local, or any
fsspec URL such as ``s3://bucket/in/``) over a pool of Ray Data actors. Each
actor loads the version once (its ONNX Runtime session is reused for every
file it gets) and scores a file with the local scorer,
:func:`~mlcycle.batch.score_file`, on its own disk: the output of a file is
the local scorer's output of that file, byte for byte the same table. The
results go to ``OUTPUT/<the input's relative path>.parquet`` (and
``.rejects.csv`` when rows were rejected), each written under a temporary
name and moved into place whole, so a killed job leaves only complete
outputs. ``OUTPUT/_mlcycle_job.json`` records the model version, the input
files (size and modification time or ETag) and the options: run again, the
job skips the files already scored; a job for another version or input is
refused unless ``restart``.

Nothing here runs on a shared disk: a worker opens the project from the
spec the driver resolved (PostgreSQL + S3 on a cluster of several machines)
and reads and writes the files through fsspec. A project on SQLite and a
local folder works on a one-machine cluster only. Ray is imported when this
function is called, never by ``mlcycle.batch``.

Not yet: the prediction log. It is a folder on the scoring machine, so rows
scored on a cluster are not logged (issue 22's log by reference records the
input files instead).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlcycle.batch._job import DEFAULT_CHUNK_ROWS, score_file
from mlcycle.batch._source import PARQUET_SUFFIXES
from mlcycle.errors import ConflictError, DataError
from mlcycle.registry import load
from mlcycle.store import ProjectStores, remote_fs

__all__ = ["ClusterScoreSummary", "score_files_on_ray"]

JOB_FILE = "_mlcycle_job.json"
_PASSED_ENV = ("AWS_", "MLCYCLE_", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class ClusterScoreSummary:
    """What a scoring job on a cluster did.

    Attributes:
        model: ``name@version`` that scored.
        output: the output folder.
        files: input files.
        skipped_files: files an earlier run of the same job had scored.
        rows, scored, rejected: rows read, written to outputs, set aside (this run).
        seconds: this run's wall time.
        rows_per_s: rows this run scored per second.
        workers: the actors that scored.
        peak_worker_rss_mb: the largest resident memory of a scoring worker (MiB).
    """

    model: str
    output: str
    files: int
    skipped_files: int
    rows: int
    scored: int
    rejected: int
    seconds: float
    rows_per_s: float
    workers: int
    peak_worker_rss_mb: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strip(path: str) -> str:
    return path.rstrip("/")


def _inputs(url: str) -> tuple[Any, str, list[str]]:
    """The filesystem, the input's root path and its Parquet files (sorted)."""
    fs, root = remote_fs(url)
    root = _strip(root)
    if not fs.exists(root):
        raise DataError(f"input {url!r} does not exist")
    if fs.isfile(root):
        files = [root]
        root = root.rsplit("/", 1)[0]
    else:
        files = sorted(
            f for f in fs.find(root) if Path(f).suffix.lower() in PARQUET_SUFFIXES and "/." not in f
        )
    if not files:
        raise DataError(f"input {url!r} holds no .parquet or .pq file")
    return fs, root, files


def _identity(fs: Any, path: str) -> dict[str, Any]:
    info = fs.info(path)
    mark = info.get("ETag") or info.get("mtime") or info.get("LastModified") or info.get("created")
    return {"size": int(info.get("size") or 0), "mark": str(mark)}


def _worker_project(stores: ProjectStores) -> dict[str, Any]:
    """How a worker opens the project: the folder (one machine), or the resolved spec."""
    from mlcycle import _settings
    from mlcycle.spec import load_spec

    spec = load_spec(stores.root / "mlcycle.yaml").model_dump(mode="json")
    url = stores.store.url
    artifacts = _settings.artifacts_uri() or spec["artifacts"].get("uri")
    local = url.startswith("sqlite") or not artifacts or "://" not in str(artifacts)
    if local:
        return {"root": str(stores.root)}
    spec["store"]["url"] = url
    spec["artifacts"]["uri"] = artifacts
    return {"spec": spec}


def _open_stores(where: dict[str, Any]) -> ProjectStores:
    if "root" in where:
        return ProjectStores.open(where["root"])
    from mlcycle.spec import parse_spec

    folder = Path(tempfile.mkdtemp(prefix="mlcycle-worker-"))
    return ProjectStores.of(folder, parse_spec(where["spec"]))


class _FileScorer:
    """A Ray Data actor: loads the version once, scores the files it is given."""

    def __init__(self, where: dict[str, Any], ref: str, options: dict[str, Any]) -> None:
        with _open_stores(where) as stores:
            self.predictor = load(ref, project=stores, threads=1)
        self.options = options
        self.scratch = Path(tempfile.mkdtemp(prefix="mlcycle-score-"))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        results: dict[str, list[Any]] = {
            "file": [],
            "rows": [],
            "scored": [],
            "rejected": [],
            "peak_rss_mb": [],
        }
        for source, target, rejects in zip(
            batch["file"], batch["output"], batch["rejects"], strict=True
        ):
            summary = self._one(str(source), str(target), str(rejects))
            results["file"].append(str(source))
            results["rows"].append(summary[0])
            results["scored"].append(summary[1])
            results["rejected"].append(summary[2])
            results["peak_rss_mb"].append(_peak_rss_mb())
        return results

    def _one(self, source: str, target: str, rejects: str) -> tuple[int, int, int]:
        in_fs, in_path = remote_fs(source)
        out_fs, out_path = remote_fs(target)
        if _is_local(out_fs):  # score beside the output: placing it is then one rename
            folder = out_path.rsplit("/", 1)[0]
            out_fs.makedirs(folder, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".mlcycle-", dir=folder))
        else:
            work = self.scratch / uuid.uuid4().hex
            work.mkdir()
        try:
            if _is_local(in_fs):  # read in place: a copy would cost a pass over the file
                local_in = Path(in_path)
            else:
                local_in = work / ("input" + Path(in_path).suffix)
                in_fs.get_file(in_path, str(local_in))
            local_out = work / "output.parquet"
            local_rejects = work / "rejects.csv"
            summary = score_file(
                self.predictor,
                local_in,
                local_out,
                id_columns=self.options["id_columns"],
                chunk_rows=self.options["chunk_rows"],
                workers=1,
                rejects=local_rejects,
                log=False,
            )
            _, rejects_path = remote_fs(rejects)
            if summary.rejects is not None:
                _place(out_fs, local_rejects, rejects_path)
            elif out_fs.exists(rejects_path):
                out_fs.rm(rejects_path)
            _place(out_fs, local_out, out_path)  # last: its presence says the file is done
            return summary.rows, summary.scored, summary.rejected
        finally:
            for f in sorted(work.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            work.rmdir()


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ``ru_maxrss`` survives ``exec``), 0 if unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _same_device(a: Path, folder: str) -> bool:
    return os.stat(a).st_dev == os.stat(folder).st_dev


def _is_local(fs: Any) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return "file" in protocols or "local" in protocols


def _place(fs: Any, local: Path, path: str) -> None:
    """Put ``local`` at ``path`` whole: under a temporary name first, then moved."""
    folder = path.rsplit("/", 1)[0]
    fs.makedirs(folder, exist_ok=True)
    if _is_local(fs) and _same_device(local, folder):
        os.replace(local, path)  # the scratch folder is beside the output: one atomic rename
        return
    temporary = f"{folder}/.{uuid.uuid4().hex}.part"
    try:
        fs.put_file(str(local), temporary)
        fs.mv(temporary, path)
    except BaseException:
        if fs.exists(temporary):
            fs.rm(temporary)
        raise


def _start_ray(workers: int | None) -> Callable[[], None]:
    """Join ``RAY_ADDRESS`` (or start a local instance); returns how to leave."""
    import ray

    if ray.is_initialized():
        return lambda: None
    address = os.environ.get("RAY_ADDRESS") or None
    ray.init(
        address=address,
        num_cpus=None if address else (workers or os.cpu_count() or 1),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    return ray.shutdown


def score_files_on_ray(
    model: str,
    input: str,
    output: str,
    *,
    project: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    id_columns: list[str] | None = None,
    restart: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ClusterScoreSummary:
    """Score every Parquet file under ``input`` into the folder ``output``, on a Ray cluster.

    Args:
        model: ``NAME@ALIAS`` or ``NAME@VERSION``; an alias is resolved once,
            here, so that every worker scores the same version.
        input: a Parquet file or a folder of them (a path or an fsspec URL).
        output: a folder (a path or an fsspec URL): one output per input file.
        project: the project folder (default: found from the current folder).
        workers: Ray Data actors (default: the cluster's CPUs, at most the files).
        chunk_rows, id_columns: as for :func:`~mlcycle.batch.score_file`.
        restart: discard outputs of a job made from another version, input or options.
        progress: called after each file with the files done and their total.

    Raises:
        DataError: the input holds no Parquet file, or the output is inside it.
        ConflictError: the output folder holds another job's results (and not ``restart``).
    """
    started = time.perf_counter()
    in_fs, in_root, files = _inputs(input)
    out_fs, out_root = remote_fs(output)
    out_root = _strip(out_root)
    if type(out_fs) is type(in_fs) and (out_root + "/").startswith(in_root + "/"):
        raise DataError(f"output {output!r} is inside the input {input!r}: write it elsewhere")
    with ProjectStores.open(project) as stores:
        version = stores.store.registry.get(model)
        ref = f"{version.name}@{version.version}"
        where = _worker_project(stores)
    options = {"chunk_rows": chunk_rows, "id_columns": id_columns}
    job = {
        "format": "mlcycle-cluster-score/1",
        "model": ref,
        "input": input,
        "files": {f: _identity(in_fs, f) for f in files},
        "options": options,
    }
    manifest = f"{out_root}/{JOB_FILE}"
    if out_fs.exists(manifest):
        previous = json.loads(out_fs.cat_file(manifest))
        if {k: previous.get(k) for k in job} != job:
            if not restart:
                raise ConflictError(
                    f"output {output!r} holds the results of another job (model "
                    f"{previous.get('model')}, or other input files or options): "
                    "pass restart=True to replace them"
                )
            out_fs.rm(out_root, recursive=True)
    out_fs.makedirs(out_root, exist_ok=True)
    out_fs.pipe_file(manifest, json.dumps(job, indent=2, sort_keys=True).encode())

    plan = []
    for f in files:
        relative = f[len(in_root) + 1 :] if f.startswith(in_root + "/") else Path(f).name
        stem = relative.rsplit(".", 1)[0]
        target = f"{out_root}/{stem}.parquet"
        plan.append(
            {
                "file": in_fs.unstrip_protocol(f),
                "output": out_fs.unstrip_protocol(target),
                "rejects": out_fs.unstrip_protocol(f"{out_root}/{stem}.rejects.csv"),
                "done": out_fs.exists(target),
            }
        )
    todo = [{k: p[k] for k in ("file", "output", "rejects")} for p in plan if not p["done"]]
    skipped = len(plan) - len(todo)
    rows = scored = rejected = 0
    n_workers, peak = 0, 0.0
    if todo:
        leave = _start_ray(workers)
        try:
            import ray

            cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
            n_workers = max(1, min(workers or int(cpus), len(todo)))
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.execution_options.preserve_order = True
            results = ray.data.from_items(todo).map_batches(
                _FileScorer,
                fn_constructor_kwargs={"where": where, "ref": ref, "options": options},
                batch_size=1,
                num_cpus=1,
                compute=ray.data.ActorPoolStrategy(size=n_workers),
                # the driver's credentials and store settings, whoever started the cluster
                runtime_env={
                    "env_vars": {k: v for k, v in os.environ.items() if k.startswith(_PASSED_ENV)}
                },
            )
            for done, row in enumerate(results.iter_rows(), start=skipped + 1):
                rows += int(row["rows"])
                scored += int(row["scored"])
                rejected += int(row["rejected"])
                peak = max(peak, float(row["peak_rss_mb"]))
                if progress is not None:
                    progress(done, len(plan))
        finally:
            leave()
    seconds = time.perf_counter() - started
    return ClusterScoreSummary(
        model=ref,
        output=output,
        files=len(plan),
        skipped_files=skipped,
        rows=rows,
        scored=scored,
        rejected=rejected,
        seconds=seconds,
        rows_per_s=rows / seconds if seconds > 0 else 0.0,
        workers=n_workers,
        peak_worker_rss_mb=round(peak, 1),
    )
