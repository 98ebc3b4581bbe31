"""Hyper-parameter tuning: Optuna studies over the training spec, each trial a run.

Example:
    >>> import tempfile, mlcycle
    >>> from mlcycle.tune import tune
    >>> with mlcycle.Project.init(tempfile.mkdtemp(), name="demo") as project:
    ...     found = tune(project, data="sklearn:iris", n_trials=2, seed=0,
    ...                  overrides={"max_epochs": 2})
    ...     found.trials["complete"] + found.trials["pruned"], found.objectives[0]["name"]
    (2, 'accuracy')
"""

from __future__ import annotations

from mlcycle.tune._pick import parse_pick, pick_trial
from mlcycle.tune._space import default_space, resolve_space
from mlcycle.tune._storage import StudyStorage, storage_for
from mlcycle.tune._study import (
    STUDY_EXPERIMENT,
    StudySummary,
    TrialEvent,
    recover,
    study_run,
    trial_runs,
    tune,
)

__all__ = [
    "STUDY_EXPERIMENT",
    "StudyStorage",
    "StudySummary",
    "TrialEvent",
    "default_space",
    "parse_pick",
    "pick_trial",
    "recover",
    "resolve_space",
    "storage_for",
    "study_run",
    "trial_runs",
    "tune",
]
