"""A study: Optuna asks for trials, mlcycle trains each as a run of the project.

:func:`tune` is ``mlcycle tune``. The study is a parent run (experiment
``studies``); every trial is an ordinary training run under it, tagged with
the study and the trial's number, whose status says how it ended
(``finished``, ``pruned``, ``failed``). A trial is judged on the validation
split (the test split stays unseen until the study has chosen); its value
each epoch goes to the pruner, which may stop it at once. When the study
ends, the chosen trial (or each point of a Pareto front) is evaluated on the
test split like any run, so it registers and serves like any run.

Workers: one runs in this process; more are processes of their own that
share the study through its storage (:mod:`~mlcycle.tune._storage`). A
worker takes a lock to count the trials and ask for one, so a study never
trains more than ``n_trials``. A trial whose worker died (SIGKILL, a lost
machine) is failed and asked again with the same parameters when a worker
next starts, so a killed study continues where it stopped.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from mlcycle._system import cores
from mlcycle.errors import ConflictError, MlcycleError, NotFoundError, SpecError
from mlcycle.evaluate import default_metric, metric
from mlcycle.spec import AUTO_KIND, TUNE_OBJECTIVES_EXTRA, Spec, TuneSpec
from mlcycle.train import StopTraining, choose_kind, evaluate_run, load_trained, resolve_data
from mlcycle.train._run import train_here
from mlcycle.tune._space import (
    Param,
    budget_field,
    decoded,
    epoch_budget,
    grid_space,
    overrides_of,
    resolve_space,
    suggest,
)
from mlcycle.tune._storage import (
    StudyStorage,
    check_name,
    pid_alive,
    process_started,
    storage_for,
)

if TYPE_CHECKING:
    import optuna

    from mlcycle.project import Project

__all__ = ["StudySummary", "TrialEvent", "tune"]

STUDY_EXPERIMENT = "studies"
# A study whose first trials all fail stops after this many: the cause is not the parameters.
MAX_FAILURES_WITHOUT_SUCCESS = 3
# How many points of a Pareto front are evaluated on the test split when none is picked.
MAX_FRONT_EVALUATED = 10
# A trial no worker named itself on after this long was asked by one that died right then.
UNNAMED_GRACE_S = 60.0
# How often a worker with nothing left to ask looks whether the others' trials have ended.
WAIT_FOR_OTHERS_S = 0.5
# TPE's random start-up trials when Hyperband prunes. Optuna's Hyperband gives each bracket
# a history of its own, and the sampler sees only the trial's bracket: TPE's default of 10
# would be paid once per bracket (3 brackets for 20 epochs: 30 of a 40-trial study drawn at
# random, TPE barely steering). bench/tune.py measured 5 against 10 (bench/RESULTS.md).
HYPERBAND_STARTUP_TRIALS = 5


@dataclass(frozen=True)
class TrialEvent:
    """One trial ended (what a progress bar draws)."""

    number: int
    state: str  # complete | pruned | failed
    objective: str
    values: list[float] | None
    best: float | None
    done: int
    n_trials: int
    pruned: int
    failed: int


@dataclass
class StudySummary:
    """What a study found: counts, the best trial (or the Pareto front), the report."""

    name: str
    run_id: str
    dataset: str
    storage: str
    objectives: list[dict[str, str]]
    n_trials: int
    trials: dict[str, int]
    epochs_trained: int
    elapsed_s: float
    best: dict[str, Any] | None = None
    pareto: list[dict[str, Any]] = field(default_factory=list)
    picked: dict[str, Any] | None = None
    report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """Plain data every worker needs to work on the study, in any process."""

    root: str
    study: str
    study_run: str
    data: str
    overrides: dict[str, Any]
    tune: dict[str, Any]
    storage: StudyStorage
    objectives: tuple[tuple[str, str], ...]  # (name, "maximize" | "minimize")
    deadline: float | None  # time.time() after which no trial starts
    workers: int


# -- the study's parts ---------------------------------------------------------------------


def _objectives(spec: TuneSpec, task: str) -> tuple[tuple[str, str], ...]:
    family: Literal["classification", "regression"] = (
        "regression" if task == "regression" else "classification"
    )
    names = spec.objective or (default_metric(task),)
    out = []
    for name in names:
        if name in TUNE_OBJECTIVES_EXTRA:
            out.append((name, "minimize"))
            continue
        m = metric(name, family, field="tune.objective")
        out.append((name, "maximize" if m.higher_is_better else "minimize"))
    return tuple(out)


def _sampler(spec: TuneSpec, params: list[Param], n_objectives: int) -> optuna.samplers.BaseSampler:
    import optuna

    # Multivariate TPE, the constant liar and GP are marked experimental by Optuna, and
    # are what its authors recommend; the warning says nothing to our users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _make_sampler(spec, params, n_objectives)


def _make_sampler(
    spec: TuneSpec, params: list[Param], n_objectives: int
) -> optuna.samplers.BaseSampler:
    import optuna

    seed = spec.seed
    if spec.sampler == "tpe":
        startup = (
            HYPERBAND_STARTUP_TRIALS if _pruner_kind(spec, n_objectives) == "hyperband" else 10
        )
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            constant_liar=spec.workers > 1,
            n_startup_trials=startup,
        )
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "cmaes":
        if n_objectives > 1:
            raise SpecError("tune.sampler: 'cmaes' optimises one objective; use tpe or nsga2")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return _grid(params, seed)


def _grid(params: list[Param], seed: int) -> optuna.samplers.GridSampler:
    import optuna

    class Grid(optuna.samplers.GridSampler):
        """Optuna's grid, which leaves the stopping to :func:`work`.

        Optuna's ``after_trial`` calls ``study.stop()`` once the grid is done,
        which works only inside ``study.optimize()``: under ask and tell it is a
        RuntimeError out of the last trial's ``tell``. :func:`work` asks
        :func:`_exhausted` before each trial instead.
        """

        def after_trial(self, *args: Any, **kwargs: Any) -> None:
            return None

    return Grid(grid_space(params), seed=seed)


def _exhausted(study: optuna.Study) -> bool:
    """A grid study has tried every point of its grid (the grid is its budget)."""
    import optuna

    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


def _pruner_kind(spec: TuneSpec, n_objectives: int) -> str:
    if spec.pruner == "auto":
        return "hyperband" if n_objectives == 1 else "none"
    return spec.pruner


def _hyperband(seed: int, max_epochs: int) -> optuna.pruners.BasePruner:
    """Hyperband whose trials fall into brackets by the study's seed, not by its name.

    Optuna deals trial ``n`` to a bracket by a hash of the study's name and
    ``n``, so two studies with the same seed but different names (the default
    name holds the time) would prune, and therefore sample, differently. With
    the seed in the hash instead, the same seed gives the same trials.
    """
    import binascii

    import optuna

    class SeededHyperband(optuna.pruners.HyperbandPruner):
        def _get_bracket_id(
            self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial
        ) -> int:
            if len(self._pruners) == 0:
                return 0
            budget = self._total_trial_allocation_budget
            n = binascii.crc32(f"mlcycle-{seed}_{trial.number}".encode()) % budget
            for bracket_id in range(len(self._pruners)):
                n -= self._trial_allocation_budgets[bracket_id]
                if n < 0:
                    return bracket_id
            raise AssertionError("unreachable: the budgets add up to the total")

    return SeededHyperband(min_resource=1, max_resource=max_epochs, reduction_factor=3)


def _pruner(spec: TuneSpec, max_epochs: int, n_objectives: int) -> optuna.pruners.BasePruner:
    import optuna

    kind = _pruner_kind(spec, n_objectives)
    if n_objectives > 1 and kind != "none":
        raise SpecError(
            f"tune.pruner: {kind!r} but Optuna cannot prune a study with several objectives; "
            "use none (or auto)"
        )
    if kind == "hyperband":
        return _hyperband(spec.seed, max_epochs)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    return optuna.pruners.NopPruner()


def _setup(plan: Plan, project: Project) -> tuple[optuna.Study, Spec, list[Param], TuneSpec]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = project.spec.with_overrides(plan.overrides) if plan.overrides else project.spec
    tspec = TuneSpec.model_validate(plan.tune)
    params = resolve_space(spec.model_copy(update={"tune": tspec}))
    max_epochs = tspec.max_epochs or epoch_budget(spec)
    study = optuna.load_study(
        study_name=plan.study,
        storage=plan.storage.open(),
        sampler=_sampler(tspec, params, len(plan.objectives)),
        pruner=_pruner(tspec, max_epochs, len(plan.objectives)),
    )
    return study, spec, params, tspec


def _state(trial: optuna.trial.FrozenTrial) -> str:
    return str(trial.state.name).lower()


def _reached(plan: Plan, tspec: TuneSpec, trials: list[optuna.trial.FrozenTrial]) -> bool:
    if tspec.target is None or len(plan.objectives) != 1:
        return False
    import optuna

    values = [
        float(t.value)
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
    ]
    if not values:
        return False
    if plan.objectives[0][1] == "maximize":
        return max(values) >= tspec.target
    return min(values) <= tspec.target


def _counted(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that count towards ``n_trials``: ended or under way, not failed."""
    import optuna

    s = optuna.trial.TrialState
    return sum(t.state in (s.COMPLETE, s.PRUNED, s.RUNNING) for t in trials)


def recover(study: optuna.Study, project: Project) -> list[int]:
    """Fail the trials whose worker died and ask them again; returns their numbers.

    A trial is orphaned when its worker's process on this machine is gone (or
    is another process with the same pid), or, for a worker elsewhere, when its
    run's heartbeat went stale (or it has no run after ``UNNAMED_GRACE_S``), or
    when no worker ever named itself on it (a kill between asking and naming,
    both under the lock: at once for a journal file, which one machine holds;
    after ``UNNAMED_GRACE_S`` for a database that workers elsewhere share).
    Its run is marked ``killed``; the same parameters are enqueued with
    ``retry_of``. Call it holding the storage lock.
    """
    import optuna

    s = optuna.trial.TrialState
    host = socket.gethostname()
    one_machine = isinstance(study._storage, optuna.storages.JournalStorage)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    orphans = []
    for t in trials:
        if t.state != s.RUNNING:
            continue
        worker = t.user_attrs.get("worker") or {}
        asked = t.datetime_start  # naive local time, as Optuna records it
        age = math.inf if asked is None else (datetime.now() - asked).total_seconds()
        run_id = t.user_attrs.get("run_id")
        if not worker:
            dead = one_machine or age > UNNAMED_GRACE_S
        elif worker.get("host") == host:
            dead = not pid_alive(int(worker.get("pid", 0)), worker.get("started"))
        elif run_id is None:  # elsewhere, and no run's heartbeat to go by
            dead = age > UNNAMED_GRACE_S
        else:
            dead = project.runs.state(project.runs.get(run_id)) == "interrupted"
        if not dead:
            continue
        storage = study._storage
        storage.set_trial_user_attr(t._trial_id, "error", "its worker died; asked again")
        storage.set_trial_state_values(t._trial_id, s.FAIL)
        run_id = t.user_attrs.get("run_id")
        if run_id is not None and project.runs.get(run_id).status == "running":
            project.store.finish_run(
                run_id,
                "killed",
                actor=project.actor,
                summary={"error": f"its worker died; trial {t.number} asked again"},
            )
        if t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        orphans.append(t.number)
    return orphans


def _run_trial(
    project: Project,
    plan: Plan,
    study: optuna.Study,
    trial: optuna.Trial,
    spec: Spec,
    params: list[Param],
    tspec: TuneSpec,
    cache: dict[int, Any],
    beat: Callable[[], None] | None,
) -> tuple[str, list[float] | None, str | None]:
    """Train one trial and tell the study how it ended: (state, values, error)."""
    import optuna

    values = suggest(trial, params)
    primary = plan.objectives[0][0]
    changes = {
        **plan.overrides,
        **overrides_of(spec, values),
        "train.early_stopping.metric": primary,
    }
    if tspec.max_epochs is not None:
        changes[budget_field(spec)] = tspec.max_epochs
    prune = len(plan.objectives) == 1
    last = epoch_budget(spec.with_overrides(changes))

    def on_epoch(report: Any) -> None:
        if beat is not None:
            beat()
        value = report.metrics.get(f"val_{primary}")
        if not prune or value is None or not math.isfinite(value):
            return
        # The step is the epochs trained (Hyperband's resource), not the epoch's index:
        # min_resource 1 is a rung after one epoch. A trial that has trained all its epochs
        # is complete, even where a rung falls on its last (max_epochs a power of 3).
        trial.report(float(value), report.epoch + 1)
        if report.epoch + 1 < last and trial.should_prune():
            raise StopTraining(
                "pruned",
                {"pruned_at_epoch": report.epoch + 1, "study": plan.study, "trial": trial.number},
            )

    try:
        outcome = train_here(
            project,
            data=plan.data,
            overrides=changes,
            quiet=True,
            name=f"{plan.study}#{trial.number}",
            on_start=lambda run_id: trial.set_user_attr("run_id", run_id),
            on_epoch=on_epoch,
            parent=plan.study_run,
            tags={"study": plan.study, "trial": str(trial.number)},
            evaluate=False,
            data_cache=cache,
        )
    except StopTraining as stop:
        trial.set_user_attr("epochs", stop.epochs_run)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return "pruned", None, None
    except (MlcycleError, ValueError, RuntimeError, ArithmeticError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        trial.set_user_attr("error", error)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return "failed", None, error
    except BaseException:
        trial.set_user_attr("error", "interrupted")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    summary = outcome.summary
    trial.set_user_attr("epochs", int(summary["epochs_run"]))
    trial.set_user_attr("val", summary.get("val", {}))
    results: list[float] = []
    for name, _ in plan.objectives:
        if name == "parameters":
            results.append(float(summary["parameters"]))
        elif name == "latency_ms":
            results.append(_latency(project, outcome.run_id, spec, cache, tspec.deploy_batch))
        else:
            results.append(float(summary["val"][name]))
    trial.set_user_attr("parameters", int(summary["parameters"]))
    study.tell(trial, results)
    return "complete", results, None


def _latency(project: Project, run_id: str, spec: Spec, cache: dict[int, Any], batch: int) -> float:
    from mlcycle.tune._latency import onnx_latency_ms

    model, config = load_trained(project, run_id)
    prepared = next(iter(cache.values()))
    return onnx_latency_ms(
        model,
        prepared.layout,
        task=str(config["task"]),
        target=str(config["target"]),
        classes=list(config["classes"]) or None,
        rows=prepared.tables["validation"],
        batch=batch,
    )


def work(
    plan: Plan,
    project: Project,
    *,
    on_trial: Callable[[TrialEvent], None] | None = None,
    beat: Callable[[], None] | None = None,
) -> None:
    """One worker: ask, train, tell, until the study has its trials, its time or its target.

    It returns once no trial of the study is running, so that what it sums up
    afterwards holds every trial (another worker's included).
    """
    study, spec, params, tspec = _setup(plan, project)
    cache: dict[int, Any] = {}
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": process_started()}
    successes, failures = 0, 0
    while True:
        with plan.storage.exclusive():
            recover(study, project)
            trials = study.get_trials(deepcopy=False)
            done = (
                _counted(trials) >= tspec.n_trials
                or _reached(plan, tspec, trials)
                or _exhausted(study)
                or (plan.deadline is not None and time.time() >= plan.deadline)
            )
            if done and not any(_state(t) == "running" for t in trials):
                break
            if not done:
                trial = study.ask()
                trial.set_user_attr("worker", me)
        if done:
            # Other workers still train trials: the study is summed up once they end (a
            # worker that dies meanwhile has its trial asked again, by this one if need be).
            if beat is not None:
                beat()
            time.sleep(WAIT_FOR_OTHERS_S)
            continue
        state, values, error = _run_trial(
            project, plan, study, trial, spec, params, tspec, cache, beat
        )
        if beat is not None:
            beat()
        if state == "failed":
            failures += 1
            if successes == 0 and failures >= MAX_FAILURES_WITHOUT_SUCCESS:
                raise MlcycleError(
                    f"study {plan.study}: the first {failures} trials failed; the last: {error}"
                )
            if failures >= tspec.n_trials:  # failed trials do not count: bound them too
                raise MlcycleError(
                    f"study {plan.study}: {failures} trials failed in this worker; the last: {error}"
                )
        else:
            successes += 1
        if on_trial is not None:
            on_trial(_event(plan, tspec, study, trial.number, state, values))


def _event(
    plan: Plan,
    tspec: TuneSpec,
    study: optuna.Study,
    number: int,
    state: str,
    values: list[float] | None,
) -> TrialEvent:
    trials = study.get_trials(deepcopy=False)
    states = [_state(t) for t in trials]
    return TrialEvent(
        number=number,
        state=state,
        objective=plan.objectives[0][0],
        values=values,
        best=_best_value(plan, trials),
        done=sum(s in ("complete", "pruned") for s in states),
        n_trials=tspec.n_trials,
        pruned=states.count("pruned"),
        failed=_failed(trials),
    )


def _failed(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that failed by themselves (not those whose worker died: they are asked again)."""
    retried = {t.user_attrs.get("retry_of") for t in trials}
    return sum(_state(t) == "fail" and t.number not in retried for t in trials)


def _best_value(plan: Plan, trials: list[optuna.trial.FrozenTrial]) -> float | None:
    values = [float(t.values[0]) for t in trials if _state(t) == "complete" and t.values]
    if not values:
        return None
    return max(values) if plan.objectives[0][1] == "maximize" else min(values)


def _worker_main(plan: Plan) -> None:  # pragma: no cover - runs in a spawned process
    import torch

    from mlcycle.project import Project

    torch.set_num_threads(max(1, cores() // plan.workers))
    with Project.open(plan.root) as project:
        work(plan, project)


# -- the driver -------------------------------------------------------------------------


def tune(
    project: Project,
    *,
    data: str | None = None,
    model: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    workers: int | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    objective: str | None = None,
    target: float | None = None,
    seed: int | None = None,
    pick: str | None = None,
    on_trial: Callable[[TrialEvent], None] | None = None,
    executor: str | None = None,
) -> StudySummary:
    """Run (or continue) an Optuna study over the training spec and return what it found.

    The keyword arguments override ``tune:`` in ``mlcycle.yaml`` for this
    study; ``overrides`` are dotted spec keys for every trial (``--set``).
    A study with ``name`` that exists is continued (``n_trials`` counts its
    trials so far). ``pick`` chooses a point of a Pareto front
    (``"latency_ms where accuracy>=0.97"``, see :func:`~mlcycle.tune.pick_trial`).
    ``on_trial`` is called after every trial that ends. ``executor`` ``ray``
    runs the ``workers`` as Ray tasks on the cluster ``RAY_ADDRESS`` names (or
    a Ray started here), sharing the study through its storage: PostgreSQL
    for a cluster of several machines; by default they are processes here.

    Raises:
        SpecError: a bad space, objective, sampler or pruner (named, with what is allowed).
        ConflictError: a study of that name exists with another dataset, objective or space.
        MlcycleError: the first trials all failed (the last error is quoted).
        NotFoundError: no point of the front meets ``pick``; the study is finished
            and reported all the same (continue it by ``name`` to pick again).
    """
    import optuna

    from mlcycle.tune._pick import parse_pick, pick_trial
    from mlcycle.tune._report import write_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if executor not in (None, "local", "ray"):
        raise SpecError(f"executor: {executor!r} cannot run a study; expected local or ray")
    started = time.monotonic()
    changes: dict[str, Any] = dict(overrides or {})
    if model is not None:
        changes["train.model.kind"] = model
    tune_changes = {
        f"tune.{k}": v
        for k, v in {
            "n_trials": n_trials,
            "timeout_s": timeout_s,
            "workers": workers,
            "sampler": sampler,
            "pruner": pruner,
            "objective": objective,
            "target": target,
            "seed": seed,
        }.items()
        if v is not None
    }
    spec = project.spec.with_overrides({**changes, **tune_changes}, via="tune")
    tspec = spec.tune
    ref = resolve_data(project, data or spec.train.data)
    version = project.datasets.get(ref)
    schema = project.datasets.schema(version)
    if schema.task is None:
        raise SpecError(f"dataset {ref} has no target: a study needs one to optimise")
    if spec.train.model.kind == AUTO_KIND:  # the space is the chosen kind's
        has_image = any(schema.column(c).type == "image" for c in schema.features)
        changes["train.model.kind"] = choose_kind(has_image)[0]
        spec = project.spec.with_overrides({**changes, **tune_changes}, via="tune")
    objectives = _objectives(tspec, schema.task)
    if pick is not None:  # a typo in --pick is refused now, not after every trial has run
        parse_pick(pick, [n for n, _ in objectives])
    params = resolve_space(spec)
    max_epochs = tspec.max_epochs or epoch_budget(spec)
    _sampler(tspec, params, len(objectives))  # refuse a bad combination before anything starts
    _pruner(tspec, max_epochs, len(objectives))
    name = check_name(name or _new_name(project, spec, version.dataset))
    storage = storage_for(project, name, tspec.storage)
    fingerprint = {
        "dataset": version.ref,
        "objectives": [list(o) for o in objectives],
        "space": {p.name: p.space.model_dump(mode="json") for p in params},
        "overrides": changes,
    }
    with storage.exclusive():
        study = optuna.create_study(
            study_name=name,
            storage=storage.open(),
            directions=[optuna.study.StudyDirection[d.upper()] for _, d in objectives],
            load_if_exists=True,
        )
        recorded = study.user_attrs.get("mlcycle")
        if recorded is None:
            run = project.runs.start(
                name,
                params={"tune": tspec.model_dump(mode="json"), **fingerprint},
                dataset=version.ref,
                tags={"kind": "study", "study": name, "storage": storage.kind},
                experiment=STUDY_EXPERIMENT,
            )
            study_run = run.id
            study.set_user_attr("mlcycle", {**fingerprint, "run_id": study_run})
        else:
            mine = {k: recorded.get(k) for k in fingerprint}
            if mine != _jsonable(fingerprint):
                differ = [k for k in fingerprint if mine[k] != _jsonable(fingerprint)[k]]
                raise ConflictError(
                    f"study {name} exists with another {', '.join(differ)}; "
                    "continue it with the same settings or choose another --name"
                )
            study_run = recorded["run_id"]
            if project.runs.get(study_run).status != "finished":
                project.store.resume_run(study_run, actor=project.actor)
        _release(study)
    deadline = time.time() + tspec.timeout_s if tspec.timeout_s else None
    plan = Plan(
        root=str(project.root),
        study=name,
        study_run=study_run,
        data=version.ref,
        overrides=changes,
        tune=tspec.model_dump(mode="json"),
        storage=storage,
        objectives=objectives,
        deadline=deadline,
        workers=tspec.workers,
    )
    parent = _Beat(project, study_run)
    try:
        if executor == "ray":
            _on_ray(plan, project, on_trial, parent)
        elif tspec.workers == 1:
            work(plan, project, on_trial=on_trial, beat=parent)
        else:
            _parallel(plan, project, on_trial, parent)
    except KeyboardInterrupt:
        project.store.finish_run(
            study_run, "killed", actor=project.actor, summary={"error": "interrupted"}
        )
        raise
    except MlcycleError as exc:
        project.store.finish_run(
            study_run, "failed", actor=project.actor, summary={"error": str(exc)}
        )
        raise

    study = optuna.load_study(study_name=name, storage=storage.open())
    summary = _summarise(project, plan, study, params, started)
    unmet: NotFoundError | None = None
    if pick is not None:
        try:
            summary.picked = pick_trial(summary, pick)
        except NotFoundError as exc:
            # The study is done all the same: finish it (report, front on test), then say so;
            # `--name` with another --pick chooses again without training.
            unmet = exc
    _evaluate_chosen(project, summary)
    report = write_report(project, study, summary)
    sha = project.artifacts.put_file(report, "text/html").sha256
    project.store.add_run_artifact(study_run, "study.html", sha)
    summary.report = str(report)
    record = project.runs.get(study_run)
    if record.status == "running":
        project.store.finish_run(
            study_run, "finished", actor=project.actor, summary=summary.to_dict()
        )
    else:
        project.store.update_summary(study_run, summary.to_dict())
    _release(study)
    if unmet is not None:
        raise unmet
    return summary


def _new_name(project: Project, spec: Spec, dataset: str) -> str:
    """``mlp-iris-20261203-161155``; ``-2``, ``-3`` after it when a study of that second exists.

    An unnamed study is a new one: it must never continue (or conflict with) the
    study another call started in the same second.
    """
    base = f"{spec.train.model.kind}-{dataset}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    name, n = base, 1
    while project.store.list_runs(experiment=STUDY_EXPERIMENT, name=name, limit=1):
        n += 1
        name = f"{base}-{n}"
    return name


class _Beat:
    """The study run's heartbeat, beaten by the worker in this process."""

    def __init__(self, project: Project, run_id: str) -> None:
        from mlcycle._runs import ActiveRun

        self.run = ActiveRun(project, project.runs.get(run_id))

    def __call__(self) -> None:
        self.run.heartbeat()


def _parallel(
    plan: Plan,
    project: Project,
    on_trial: Callable[[TrialEvent], None] | None,
    beat: Callable[[], None],
) -> None:
    """``plan.workers`` processes on the study; this one follows their trials."""

    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_main, args=(plan,)) for _ in range(plan.workers)]
    for process in processes:
        process.start()
    try:
        study = _follow(plan, on_trial, beat, lambda: any(p.is_alive() for p in processes))
    except BaseException:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()
    codes = [p.exitcode for p in processes]
    trials = study.get_trials(deepcopy=False)
    _release(study)
    if any(codes) and not any(_state(t) == "complete" for t in trials):
        errors = [t.user_attrs.get("error") for t in trials if t.user_attrs.get("error")]
        raise MlcycleError(
            f"study {plan.study}: every worker stopped (exit codes {codes}) and no trial "
            f"completed; {errors[-1] if errors else 'see the workers output above'}"
        )


def _follow(
    plan: Plan,
    on_trial: Callable[[TrialEvent], None] | None,
    beat: Callable[[], None],
    alive: Callable[[], bool],
) -> optuna.Study:
    """Report the trials the workers end until none is ``alive``; return the study."""
    import optuna

    tspec = TuneSpec.model_validate(plan.tune)
    study = optuna.load_study(study_name=plan.study, storage=plan.storage.open())
    seen: set[int] = set()
    while True:
        running = alive()
        beat()
        for t in study.get_trials(deepcopy=False):
            if t.number in seen or t.state.name in ("RUNNING", "WAITING"):
                continue
            seen.add(t.number)
            if on_trial is not None:
                state = {"fail": "failed"}.get(_state(t), _state(t))
                on_trial(_event(plan, tspec, study, t.number, state, t.values))
        if not running:
            return study
        time.sleep(0.5)


def _ray_worker(plan: Plan, portable: Any) -> None:  # pragma: no cover - runs in a Ray task
    with portable.open() as project:
        work(plan, project)


def _on_ray(
    plan: Plan,
    project: Project,
    on_trial: Callable[[TrialEvent], None] | None,
    beat: Callable[[], None],
) -> None:
    """``plan.workers`` Ray tasks on the study; this process follows their trials.

    Each task opens the project from its spec (:class:`~mlcycle.train._ray.Portable`)
    and works as a local worker does, asking trials under the storage's lock:
    a PostgreSQL advisory lock for a study in PostgreSQL, so that tasks on
    several machines never overshoot ``n_trials``.
    """
    from mlcycle.train._ray import Portable, connect, one_machine_only

    portable = Portable.of(project)
    ray = connect()
    one_machine_only(ray, portable.local or plan.storage.kind != "postgres")
    task = ray.remote(num_cpus=1, max_retries=0)(_ray_worker)
    pending = [task.remote(plan, portable) for _ in range(plan.workers)]
    errors: list[BaseException] = []

    def alive() -> bool:
        nonlocal pending
        ended, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
        for ref in ended:
            try:
                ray.get(ref)
            except Exception as exc:  # reported below, once every worker has ended
                errors.append(exc)
        return bool(pending)

    try:
        study = _follow(plan, on_trial, beat, alive)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    trials = study.get_trials(deepcopy=False)
    _release(study)
    if errors and not any(_state(t) == "complete" for t in trials):
        raise MlcycleError(
            f"study {plan.study}: every Ray worker stopped and no trial completed; {errors[-1]}"
        )


def _release(study: optuna.Study) -> None:
    """Close the database connections a study's storage holds (a journal holds none)."""
    storage = getattr(study._storage, "_backend", study._storage)
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def _trial_dict(
    t: optuna.trial.FrozenTrial, params: list[Param], objectives: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    return {
        "trial": t.number,
        "run_id": t.user_attrs.get("run_id"),
        "values": dict(zip([n for n, _ in objectives], t.values or [], strict=False)),
        "params": decoded(params, t.params),
        "epochs": t.user_attrs.get("epochs"),
        "val": t.user_attrs.get("val", {}),
    }


def _summarise(
    project: Project, plan: Plan, study: optuna.Study, params: list[Param], started: float
) -> StudySummary:
    trials = study.get_trials(deepcopy=False)
    states = [_state(t) for t in trials]
    retried = {t.user_attrs.get("retry_of") for t in trials}
    summary = StudySummary(
        name=plan.study,
        run_id=plan.study_run,
        dataset=plan.data,
        storage=plan.storage.kind,
        objectives=[{"name": n, "direction": d} for n, d in plan.objectives],
        n_trials=int(plan.tune["n_trials"]),
        trials={
            "complete": states.count("complete"),
            "pruned": states.count("pruned"),
            "failed": _failed(trials),
            "retried": len(retried - {None}),
        },
        epochs_trained=sum(int(t.user_attrs.get("epochs") or 0) for t in trials),
        elapsed_s=time.monotonic() - started,
    )
    if not summary.trials["complete"]:
        return summary
    if len(plan.objectives) == 1:
        summary.best = _trial_dict(study.best_trial, params, plan.objectives)
    else:
        front = sorted(study.best_trials, key=lambda t: t.number)
        summary.pareto = [_trial_dict(t, params, plan.objectives) for t in front]
    return summary


def _evaluate_chosen(project: Project, summary: StudySummary) -> None:
    """Evaluate on the test split the trial the study chose (or the front's points)."""
    chosen = [summary.best] if summary.best else []
    if summary.picked is not None:
        chosen = [summary.picked]
    elif summary.pareto:
        chosen = summary.pareto[:MAX_FRONT_EVALUATED]
    for point in chosen:
        run_id = point.get("run_id")
        if not run_id:
            continue
        record = project.runs.get(run_id)
        if "test" not in record.summary:
            outcome = evaluate_run(project, run_id)
            project.store.update_summary(run_id, outcome.summary)
            project.store.set_tags(run_id, {"tuned": summary.name})
            record = project.runs.get(run_id)
        point["test"] = record.summary.get("test", {})
        point["test_ci"] = record.summary.get("test_ci", {})
        point["report"] = record.summary.get("report")


def study_run(project: Project, ref: str) -> Any:
    """The parent run of study ``ref`` (its name, or its run's id or id prefix).

    Raises:
        NotFoundError: no study has that name or run id (the message lists some).
    """

    named = project.store.list_runs(experiment=STUDY_EXPERIMENT, name=ref, limit=1)
    if named:
        return named[0]
    try:
        record = project.runs.get(ref)
    except NotFoundError:
        record = None
    if record is not None and record.experiment == STUDY_EXPERIMENT:
        return record
    known = [r.name for r in project.store.list_runs(experiment=STUDY_EXPERIMENT, limit=10)]
    raise NotFoundError(
        f"no study {ref!r} (studies: {', '.join(known) if known else 'none yet: mlcycle tune'})"
    )


def trial_runs(project: Project, study_run_id: str) -> list[Any]:
    """The runs of a study's trials, by trial number."""
    runs = [
        r
        for r in project.store.list_runs(parent=study_run_id, limit=1_000_000)
        if "trial" in r.tags
    ]
    return sorted(runs, key=lambda r: int(r.tags["trial"]))
