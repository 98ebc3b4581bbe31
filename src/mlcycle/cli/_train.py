"""``mlcycle train`` and ``mlcycle evaluate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.table import Table

from mlcycle.cli._app import app, out, print_json, state
from mlcycle.cli._progress import EpochBar
from mlcycle.errors import SpecError
from mlcycle.plugins import EXECUTORS
from mlcycle.store import check_name

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.train import TrainOutcome

# The runs table's name column holds this many characters.
MAX_RUN_NAME = 200

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the run id and test metrics as JSON.")
]


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are YAML (``0.01``, ``[64, 32]``, ``true``)."""
    out_: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {pair!r}: expected key=value, e.g. --set lr=0.01")
        try:
            out_[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise SpecError(f"--set {pair!r}: the value is not valid YAML") from None
    return out_


def headline_table(outcome: TrainOutcome) -> Table:
    """Test metrics with their bootstrap intervals."""
    ci = outcome.summary.get("test_ci", {})
    table = Table("metric", "test", "95% CI", title=f"test split of {outcome.dataset}")
    for name, value in outcome.test.items():
        if value is None:
            continue
        bounds = ci.get(name) or {}
        low, high = bounds.get("low"), bounds.get("high")
        interval = f"{low:.4f} to {high:.4f}" if low is not None and high is not None else ""
        table.add_row(name, f"{value:.4f}", interval)
    return table


def _report(outcome: TrainOutcome, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "run_id": outcome.run_id,
                "dataset": outcome.dataset,
                "test": outcome.test,
                "test_ci": outcome.summary.get("test_ci", {}),
                "slices": outcome.summary.get("slices", {}),
                "report": str(outcome.report),
            }
        )
        return
    out.print(headline_table(outcome))
    s = outcome.summary
    if s.get("trees") is not None:  # boosted trees: rounds, not epochs
        out.print(
            f"best round {s['best_epoch']} of {s['epochs_run']}"
            f"{' (stopped early)' if s.get('stopped_early') else ''}; "
            f"{s['trees']} trees, {s['parameters']:,} leaves, trained in {s['train_seconds']:.2f} s"
        )
    elif s.get("best_epoch") is not None:
        out.print(
            f"best epoch {s['best_epoch']} of {s['epochs_run']}"
            f"{' (stopped early)' if s.get('stopped_early') else ''}; "
            f"{s['samples_per_s']:.0f} samples/s on {s['device']}, {s['parameters']:,} parameters"
        )
    for warning in s.get("warnings", []):
        out.print(f"[yellow]warning:[/] {warning}")
    out.print(f"run [bold]{outcome.run_id}[/]; report: {outcome.report}")


def _announce(
    project: Project, data: str | None, overrides: dict[str, Any], quiet: bool, model: str | None
) -> str:
    """Resolve the dataset version to train on and say which it is, what it predicts,
    and which kind ``auto`` picks for it."""
    from mlcycle._datasets import describe_target
    from mlcycle.spec import AUTO_KIND
    from mlcycle.train import choose_kind, resolve_data

    spec = project.spec.with_overrides(overrides, via="--set") if overrides else project.spec
    version = project.datasets.get(
        resolve_data(project, data or spec.train.data, how="pass --data NAME[@VERSION]")
    )
    if not quiet:
        latest = project.datasets.get(version.dataset)
        where = (
            "the latest" if latest.version == version.version else f"latest is @{latest.version}"
        )
        out.print(f"training on {version.ref} ({describe_target(version)}; {where})")
        if (model or spec.train.model.kind) == AUTO_KIND:
            schema = project.datasets.schema(version)
            has_image = any(schema.column(c).type == "image" for c in schema.features)
            kind, why = choose_kind(has_image)
            out.print(f"model kind auto → {kind} ({why})")
    return version.ref


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[
        str | None,
        typer.Option("--data", help="NAME[@VERSION], or a source such as sklearn:digits."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="A model kind: mlp, cnn, linear, gbm (LightGBM), custom, auto (gbm for tables, "
            "cnn for images) or a registered one (overrides train.model.kind).",
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override the spec for this run: key=value (lr=0.01, model.hidden=[64])."
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto | cpu | cuda[:N] (overrides train.device).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue this run from its last checkpoint.")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="Where to train: local or ray (RAY_ADDRESS, else a Ray on this machine); "
            "overrides train.executor.",
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", help="File the run under this experiment (default: default)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The run's name (default: <model>-<dataset>).")
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Tag the run: KEY=VALUE (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a model, evaluate it on the held-out test split and record the run."""
    from mlcycle.cli._runs import parse_tags
    from mlcycle.train import resume as resume_run
    from mlcycle.train import train as train_run

    if executor is not None and executor not in EXECUTORS.names():
        raise SpecError(f"--executor: {EXECUTORS.unknown(executor)}")
    with state(ctx).open() as project, EpochBar(show=not (quiet or as_json)) as bar:
        if resume is not None:
            if data or model or sets or device or experiment or name or tags:
                raise SpecError(
                    "--resume continues a run as recorded: drop "
                    "--data/--model/--set/--device/--experiment/--name/--tag"
                )
            outcome = resume_run(project, resume, on_progress=bar, executor=executor)
        else:
            overrides = parse_sets(sets or [])
            run_tags = parse_tags(tags or [])
            if experiment is not None:
                check_name(experiment, "experiment name")
            if name is not None and not 0 < len(name.strip()) <= MAX_RUN_NAME:
                raise SpecError(f"--name {name!r}: expected 1 to {MAX_RUN_NAME} characters")
            ref = _announce(project, data, overrides, as_json, model)
            outcome = train_run(
                project,
                data=ref,
                model=model,
                overrides=overrides,
                device=device,
                name=name,
                experiment=experiment or "default",
                tags=run_tags,
                on_progress=bar,
                executor=executor,
            )
        _report(outcome, as_json)


def slice_tables(slices: dict[str, dict[str, dict[str, Any]]]) -> list[Table]:
    """One table per sliced column; a binned numeric column says so in its title."""
    tables = []
    for column, groups in slices.items():
        names = ["accuracy", "f1_macro"] if "accuracy" in str(groups) else ["mae", "rmse"]
        n_bins = sum("bin" in m for m in groups.values())
        title = column + (f" (numeric: {n_bins} quantile bins)" if n_bins else "")
        table = Table("slice", "rows", *names, title=title, title_justify="left")
        for value, metrics in groups.items():
            cells = [metrics.get(name) for name in names]
            table.add_row(
                str(value),
                str(metrics.get("n")),
                *("-" if v is None else f"{v:.4f}" for v in cells),
            )
        tables.append(table)
    return tables


@app.command()
def evaluate(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    slices: Annotated[
        list[str] | None,
        typer.Option("--slice", help="Break the metrics down by this column (repeatable)."),
    ] = None,
    bins: Annotated[
        int | None,
        typer.Option(
            "--bins",
            help="Cut a numeric --slice column into this many quantile bins "
            "(default: evaluate.bins, 4).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a run's model on its test split again; write the HTML report."""
    from mlcycle.train import evaluate_run

    with state(ctx).open() as project:
        outcome = evaluate_run(project, run_id, slices=tuple(slices) if slices else None, bins=bins)
        _report(outcome, as_json)
        if not as_json:
            for table in slice_tables(outcome.summary.get("slices", {})):
                out.print(table)
