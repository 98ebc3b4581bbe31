"""The closed loop: triggers, retraining, the champion/challenger gate, rollout.

:func:`tick` advances a model's loop one step at a time and records every
decision as an event with its reasons; :func:`run_loop` ticks on an interval
(``mlcycle loop``) or once (``mlcycle loop --once``, for cron). The loop's
state lives in the store, so a killed loop resumes where it was; a tick that
fails is recorded and the loop backs off and goes on.
"""

from __future__ import annotations

from mlcycle.loop._base import Trigger, TriggerContext
from mlcycle.loop._data import RetrainData, labelled_rows, retraining_data
from mlcycle.loop._gate import GateVerdict, gate
from mlcycle.loop._judge import JudgedPair, judge_versions
from mlcycle.loop._loop import TickError, TickResult, backoff, loop_model, run_loop, tick
from mlcycle.loop._rollout import Traffic, judge_step, live_figures, read_traffic, set_traffic
from mlcycle.loop._state import LoopState, Phase, history, hold_lease, read_state, write_state
from mlcycle.loop._story import render_story, story_points

__all__ = [
    "GateVerdict",
    "JudgedPair",
    "LoopState",
    "Phase",
    "RetrainData",
    "TickError",
    "TickResult",
    "Traffic",
    "Trigger",
    "TriggerContext",
    "backoff",
    "gate",
    "history",
    "hold_lease",
    "judge_step",
    "judge_versions",
    "labelled_rows",
    "live_figures",
    "loop_model",
    "read_state",
    "read_traffic",
    "render_story",
    "retraining_data",
    "run_loop",
    "set_traffic",
    "story_points",
    "tick",
    "write_state",
]
