"""The study's HTML report: one self-contained page that works offline.

Optuna's own Plotly figures (history, intermediate values with pruned
trials marked, fANOVA importances, parallel coordinates, contour and slice
of the two most important parameters, the Pareto front), a table of every
trial with its run, status, values and parameters, and the chosen trial's
test metrics with their intervals. plotly.js is inlined once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle._html import esc, fmt, html_page, section, table, write_page
from mlcycle.evaluate._figures import Figures

if TYPE_CHECKING:
    import optuna

    from mlcycle.project import Project
    from mlcycle.tune._study import StudySummary

__all__ = ["report_path", "write_report"]


def report_path(project: Project, name: str) -> Path:
    return project.root / ".mlcycle" / "reports" / f"study-{name}.html"


def _figure(figs: Figures, title: str, make: Callable[[], Any], height: int = 420) -> str:
    """A figure's HTML, or a note saying why it cannot be drawn (too few trials, ...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = make()
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        return section(title, f'<p class="note">not drawn: {esc(exc)}</p>')
    return section(title, figs.html(fig, height))


def write_report(project: Project, study: optuna.Study, summary: StudySummary) -> Path:
    """Write the report of ``study`` and return its path."""
    import optuna
    import optuna.visualization as vis

    figs = Figures()
    names = [o["name"] for o in summary.objectives]
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    parts = [_overview(summary)]
    if summary.best is not None or summary.picked is not None or summary.pareto:
        parts.append(_chosen(summary))
    multi = len(names) > 1
    target = (lambda t: t.values[0]) if multi else None
    label = names[0]
    if complete:
        parts.append(
            _figure(
                figs,
                "Optimisation history",
                lambda: vis.plot_optimization_history(study, target=target, target_name=label),
            )
        )
        if not multi:
            parts.append(
                _figure(
                    figs,
                    "Validation curve of every trial (pruned trials end early)",
                    lambda: _intermediate(study),
                )
            )
        importances: dict[str, float] = {}
        if len(complete) >= 2 and study.get_trials()[0].params:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    importances = optuna.importance.get_param_importances(
                        study,
                        evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                        target=target,
                    )
            except (ValueError, RuntimeError):
                importances = {}
        if importances:
            parts.append(
                _figure(
                    figs,
                    "Parameter importance (fANOVA)",
                    lambda: vis.plot_param_importances(
                        study,
                        evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                        target=target,
                        target_name=label,
                    ),
                )
            )
        parts.append(
            _figure(
                figs,
                "Parallel coordinates",
                lambda: vis.plot_parallel_coordinate(study, target=target, target_name=label),
            )
        )
        top = list(importances)[:2]
        if len(top) == 2:
            parts.append(
                _figure(
                    figs,
                    f"Contour of {top[0]} and {top[1]}",
                    lambda: vis.plot_contour(study, params=top, target=target, target_name=label),
                    500,
                )
            )
        if top:
            parts.append(
                _figure(
                    figs,
                    "Slice of the most important parameters",
                    lambda: vis.plot_slice(study, params=top, target=target, target_name=label),
                )
            )
        if multi:
            parts.append(
                _figure(
                    figs,
                    "Pareto front",
                    lambda: vis.plot_pareto_front(study, target_names=names),
                    500,
                )
            )
    parts.append(_trials_table(trials, names))
    path = report_path(project, summary.name)
    subtitle = (
        f'<p class="note">study run {esc(summary.run_id)} · dataset {esc(summary.dataset)} · '
        f"storage {esc(summary.storage)}</p>"
    )
    write_page(path, html_page(f"mlcycle study {summary.name}", subtitle, parts))
    return path


def _intermediate(study: optuna.Study) -> Any:
    """Each trial's validation value per epoch; pruned trials dashed, in red."""
    import optuna

    go = Figures().go
    fig = go.Figure()
    for t in study.get_trials(deepcopy=False):
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        pruned = t.state == optuna.trial.TrialState.PRUNED
        fig.add_trace(
            go.Scatter(
                x=steps,  # steps are epochs trained (1, 2, ...)
                y=[t.intermediate_values[s] for s in steps],
                mode="lines+markers",
                name=f"trial {t.number}{' (pruned)' if pruned else ''}",
                line={"dash": "dot", "color": "#d64545"} if pruned else {},
                marker={"size": 4},
            )
        )
    fig.update_layout(xaxis_title="epoch", yaxis_title="validation value", showlegend=False)
    return fig


def _overview(summary: StudySummary) -> str:
    rows = [
        ["objectives", ", ".join(f"{o['name']} ({o['direction']})" for o in summary.objectives)],
        ["trials asked for", fmt(summary.n_trials)],
        *[[f"trials {k}", fmt(v)] for k, v in summary.trials.items()],
        ["epochs trained, all trials", fmt(summary.epochs_trained)],
        ["wall time (s)", f"{summary.elapsed_s:.1f}"],
    ]
    return section("Study", table(["", ""], rows, text=(1,)))


def _chosen(summary: StudySummary) -> str:
    points = (
        [summary.picked] if summary.picked else ([summary.best] if summary.best else summary.pareto)
    )
    head = "Picked trial" if summary.picked else ("Best trial" if summary.best else "Pareto front")
    rows = []
    for p in points:
        assert p is not None
        test = p.get("test") or {}
        ci = p.get("test_ci") or {}
        tests = ", ".join(
            f"{k} {fmt(v)}"
            + (
                f" [{fmt(ci[k].get('low'))}, {fmt(ci[k].get('high'))}]"
                if isinstance(ci.get(k), dict)
                else ""
            )
            for k, v in test.items()
            if isinstance(v, int | float)
        )
        rows.append(
            [
                str(p["trial"]),
                esc(p.get("run_id") or ""),
                ", ".join(f"{k} {fmt(v)}" for k, v in p["values"].items()),
                esc(tests),
                esc(", ".join(f"{k}={v}" for k, v in p["params"].items())),
            ]
        )
    note = (
        '<p class="note">values on the validation split, which chose the trial; '
        "test metrics (95% bootstrap intervals) on the test split, seen once afterwards. "
        "Register it with <code>mlcycle register RUN --name NAME</code>.</p>"
    )
    return section(
        head,
        table(["trial", "run", "validation", "test", "parameters"], rows, text=(1, 2, 3, 4)) + note,
    )


def _trials_table(trials: list[optuna.trial.FrozenTrial], names: list[str]) -> str:
    rows = []
    for t in trials:
        values = ", ".join(f"{n} {fmt(v)}" for n, v in zip(names, t.values or [], strict=False))
        rows.append(
            [
                str(t.number),
                t.state.name.lower(),
                values,
                fmt(t.user_attrs.get("epochs")),
                esc(t.user_attrs.get("run_id") or ""),
                esc(", ".join(f"{k}={v}" for k, v in t.params.items())),
                esc(t.user_attrs.get("error") or ""),
            ]
        )
    return section(
        "Trials",
        table(
            ["trial", "state", "values", "epochs", "run", "parameters", "error"],
            rows,
            text=(1, 2, 4, 5, 6),
        ),
    )
