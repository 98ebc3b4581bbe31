"""A cycle's data and training: the triggered and retraining phases.

:func:`collect` (``triggered``) waits for enough fresh labelled rows, then
versions what the challenger trains on and what the gate holds out;
:func:`retrain` (``retraining``) runs an ordinary training run with the
champion's recorded spec, found again by its id after a kill, or, with
``loop.retrain.tune``, a study from that spec on the fresh data whose best
trial is the challenger, continued by its name after a kill; either run is
registered as ``@challenger``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from mlcycle.errors import NotFoundError
from mlcycle.loop._data import DataMode, labelled_rows, retraining_data
from mlcycle.loop._state import LoopState
from mlcycle.loop._work import CHALLENGER, Work, iso

if TYPE_CHECKING:
    from mlcycle.store import MetadataStore, RunRecord

__all__ = ["collect", "cycle_run", "data_mode", "retrain", "study_name"]


def data_mode(work: Work, state: LoopState) -> tuple[DataMode, str]:
    """What the challenger trains on, and why."""
    mode = work.spec.data
    if mode != "auto":
        return mode, f"loop.data is {mode!r}"
    if "performance" in state.kinds:
        return "window", (
            "the champion's performance dropped: the old labels may be wrong now "
            "(a change of concept), so the challenger learns from the fresh rows alone"
        )
    return "reference+window", (
        "no performance drop: the old labels still hold, so the champion's data "
        "and the fresh rows together"
    )


def collect(work: Work, state: LoopState) -> LoopState:
    champion = work.champion()
    since = datetime.fromisoformat(state.fresh_since) if state.fresh_since else None
    fresh = labelled_rows(work.project, champion, since=since)
    if fresh.num_rows < work.spec.min_labels:
        work.steps.append(
            f"waiting for labels: {fresh.num_rows}/{work.spec.min_labels} fresh labelled rows"
        )
        return state
    fresh = fresh.slice(max(0, fresh.num_rows - work.spec.window_rows))
    mode, why = data_mode(work, state)
    history = labelled_rows(work.project, champion) if mode == "all" else None
    # A new concept makes earlier held-out rows wrong, otherwise they still judge:
    # a change starts a new pool, and the retrainings that learn it share it.
    starts = mode == "window" and state.concept_since is None
    pool = None if starts else state.holdout_pool
    concept = state.fresh_since if starts else state.concept_since
    data = retraining_data(
        work.project,
        champion,
        fresh,
        mode=mode,
        holdout=work.spec.holdout,
        seed=state.cycle,
        history=history,
        earlier_holdout=pool,
        max_holdout_rows=work.spec.max_holdout_rows,
    )
    newest = pc.max(fresh.column("time")).as_py() if "time" in fresh.column_names else None
    details = {
        **data.to_dict(),
        "mode": mode,
        "why": why,
        "newest": None if newest is None else iso(newest + timedelta(microseconds=1)),
    }
    return work.record(
        state.next(
            phase="retraining",
            data=details,
            holdout_pool=data.holdout_ref,
            concept_since=concept or state.fresh_since if mode == "window" else concept,
        ),
        "data",
        f"{data.train_ref} to train on ({'; '.join(data.parts)}), "
        f"{data.holdout_ref} ({data.holdout_rows} rows) held out for the gate; "
        f"{mode}: {why}",
    )


def study_name(model: str, cycle: int) -> str:
    """The study of ``model``'s loop in ``cycle``: the same name when a killed loop resumes.

    >>> study_name("churn", 3)
    'loop-churn-c3-tune'
    """
    return f"loop-{model}-c{cycle}-tune"


def retrain(work: Work, state: LoopState) -> LoopState:
    from mlcycle.workflow import register

    assert state.data is not None
    data = str(state.data["train_ref"])
    champion = work.champion()
    params = dict(champion.lineage.get("params", {}).get("train") or {})
    params.pop("data", None)
    overrides = {f"train.{k}": v for k, v in params.items()}
    if work.spec.retrain.tune is not None:
        state, run_id = _retune(work, state, overrides)
    else:
        run_id = _train(work, state, overrides)
    tuned = state.study is not None and (
        work.project.runs.get(run_id).tags.get("study") == state.study
    )
    how = f"best trial of study {state.study}" if tuned else "retrained"
    made = [v for v in work.project.store.registry.list_versions(work.model) if v.run_id == run_id]
    if made:
        version = made[0]
        work.project.store.registry.set_alias(
            work.model, version.version, CHALLENGER, actor=work.project.actor, reason="loop"
        )
    else:
        version = register(
            work.project,
            run_id,
            work.model,
            alias=CHALLENGER,
            description=f"challenger of cycle {state.cycle}: {'; '.join(state.triggers)}",
            reason=f"loop cycle {state.cycle}: {how} on {data}",
        )
    what = f" ({how})" if tuned else ""
    return work.record(
        state.next(phase="gating", run=run_id, challenger=version.version),
        "retrained",
        f"run {run_id[:8]}{what} on {data} registered as "
        f"{work.model}@{version.version} (@{CHALLENGER})",
    )


def _train(work: Work, state: LoopState, overrides: dict[str, Any]) -> str:
    """One training run with the champion's parameters (resumed after a kill); its id."""
    from mlcycle.train import resume, train

    assert state.data is not None
    name = f"loop-{work.model}-c{state.cycle}"
    existing = cycle_run(work.project.store, state, name)
    if existing is not None and existing.status == "finished":
        return existing.id
    if existing is not None and existing.status == "running":
        run_id = resume(work.project, existing.id, quiet=True).run_id
        work.steps.append(f"resumed the interrupted run {run_id[:8]}")
        return run_id
    data = str(state.data["train_ref"])

    def started(run_id: str) -> None:  # remembered, so a killed loop resumes this run
        work.record(state.next(run=run_id), "training", f"run {run_id[:8]} on {data}")

    outcome = train(
        work.project, data=data, overrides=overrides, name=name, quiet=True, on_start=started
    )
    return outcome.run_id


def _retune(work: Work, state: LoopState, overrides: dict[str, Any]) -> tuple[LoopState, str]:
    """A study from the champion's parameters on the fresh data; its best trial's run id.

    The study is named after the cycle (:func:`study_name`) and that name is
    recorded before the first trial, so a loop killed mid-study continues it
    (its dead trial asked again) rather than starting another. A study in which
    no trial completed leaves the champion's parameters: one ordinary run.
    """
    from mlcycle.tune import tune

    retune = work.spec.retrain.tune
    assert retune is not None and state.data is not None
    work.step = "tune"
    name = study_name(work.model, state.cycle)
    if state.study == name and state.run is not None:
        existing = cycle_run(work.project.store, state, name)
        if existing is not None and existing.status == "finished":
            return state, existing.id  # the study chose before a kill: register its choice
    data = str(state.data["train_ref"])
    if state.study != name:
        budget = f"{retune.n_trials} trials"
        if retune.timeout_s is not None:
            budget += f" or {retune.timeout_s:g} s"
        state = work.record(
            state.next(study=name, run=None),
            "retuning",
            f"study {name}: {budget} on {data}, from the champion's parameters",
        )
    else:
        work.steps.append(f"continued the interrupted study {name}")
    found = tune(
        work.project,
        data=data,
        overrides=overrides,
        name=name,
        n_trials=retune.n_trials,
        timeout_s=retune.timeout_s,
        objective=_objective(work),
    )
    counts = found.trials
    done = counts["complete"] + counts["pruned"]
    extra = [f"{counts[k]} {k}" for k in ("pruned", "failed") if counts[k]]
    tally = f"{done} trials" + (f" ({', '.join(extra)})" if extra else "")
    best = found.best
    if best is None or not best.get("run_id"):
        work.steps.append(
            f"study {name}: no trial completed ({tally}); training with the champion's parameters"
        )
        work.step = "retrain"
        return state, _train(work, state, overrides)
    objective, value = next(iter(best["values"].items()))
    chosen = ", ".join(f"{k}={_short(v)}" for k, v in best["params"].items())
    state = work.record(
        state.next(run=best["run_id"]),
        "retuned",
        f"study {name}, {tally}, best {objective} {value:.4f} on validation "
        f"(trial {best['trial']}, run {best['run_id'][:8]}): {chosen}",
    )
    work.step = "retrain"
    return state, str(best["run_id"])


def _objective(work: Work) -> str | None:
    """What the loop's study optimises: the gate's metric, else ``tune:``'s first objective.

    A challenger is one run, so the loop's study has one objective even where
    ``tune.objective`` names several for a Pareto front.
    """
    if work.spec.gate.metric is not None:
        return str(work.spec.gate.metric)
    named = work.project.spec.tune.objective
    return named[0] if named else None


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def cycle_run(store: MetadataStore, state: LoopState, name: str) -> RunRecord | None:
    """The training run of the cycle ``state`` is in, or None if it has not started.

    The loop records the run's id in the state as soon as the run exists, so a
    loop killed mid-training resumes that very run however many runs the store
    holds. A state written before the id was recorded (or by a loop killed in
    the instant between the run's start and that record) falls back to the
    newest run named ``name``.
    """
    if state.run is not None:
        try:
            return store.get_run(state.run)
        except NotFoundError:
            return None
    runs = store.list_runs(name=name, limit=1)
    return runs[0] if runs else None
