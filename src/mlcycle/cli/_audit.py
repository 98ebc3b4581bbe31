"""``mlcycle audit``: explainability, fairness and robustness of a version; ``mlcycle mitigate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlcycle.cli._app import app, out, print_json, state
from mlcycle.errors import SpecError


def _options(
    *,
    sensitive: list[str] | None,
    positive: str | None,
    min_group: int | None,
    eps: list[float] | None,
    attacks: list[str] | None,
    metric: str | None,
    seed: int | None,
    extra: list[str] | None,
    kinds: list[str],
) -> dict[str, dict[str, Any]]:
    """Per audit kind, the keyword arguments the flags name (only for the kinds that run)."""
    given: dict[str, dict[str, Any]] = {
        "fairness": {"sensitive": sensitive, "positive": positive, "min_group": min_group},
        "robustness": {"eps": tuple(eps) if eps else None, "attacks": attacks},
        "explain": {"metric": metric},
    }
    options: dict[str, dict[str, Any]] = {kind: {} for kind in kinds}
    for kind, values in given.items():
        for key, value in values.items():
            if value is None:
                continue
            if kind not in options:
                flag = "--" + key.replace("_", "-")
                raise SpecError(f"{flag} is an option of the {kind} audit, which is not asked for")
            options[kind][key] = value
    if seed is not None:
        for kind in options:
            options[kind]["seed"] = seed
    for item in extra or []:
        key, eq, text = item.partition("=")
        kind, dot, name = key.partition(".")
        if not eq or not dot or not name:
            raise SpecError(
                f"--option {item!r}: expected KIND.NAME=VALUE, e.g. fairness.bootstrap=500"
            )
        if kind not in options:
            raise SpecError(f"--option {item!r}: the {kind} audit is not asked for")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare word: a string
        options[kind][name] = value
    return options


def _show(blocks: list[Any]) -> None:
    for block in blocks:
        if isinstance(block, str):
            out.print(block)
            continue
        header, *rows = block
        view = Table(*header)
        for row in rows:
            view.add_row(*row)
        out.print(view)


@app.command()
def audit(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS.")],
    explain: Annotated[
        bool, typer.Option("--explain", help="Global importance and per-row attributions.")
    ] = False,
    fairness: Annotated[
        bool, typer.Option("--fairness", help="Pre- and post-training bias metrics per facet.")
    ] = False,
    robustness: Annotated[
        bool, typer.Option("--robustness", help="Accuracy under FGSM and PGD attacks.")
    ] = False,
    sensitive: Annotated[
        list[str] | None,
        typer.Option(
            help="A sensitive column, or COLUMN=VALUE (repeatable; default: the schema's)."
        ),
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="The favourable class (fairness; default: the second).")
    ] = None,
    min_group: Annotated[
        int | None, typer.Option(min=1, help="Fewest test rows per group (fairness).")
    ] = None,
    eps: Annotated[
        list[float] | None,
        typer.Option(help="Attack budget, in training deviations or pixel units (repeatable)."),
    ] = None,
    attack: Annotated[
        list[str] | None, typer.Option(help="fgsm | pgd (repeatable; default both).")
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="The metric permutation importance measures (explain).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every audit's sampling.")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(help="Any other option of an audit: KIND.NAME=VALUE (JSON value)."),
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Report only: store nothing with the version.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Audit a version (all three audits unless some are named); store it with the version."""
    from mlcycle.audit import audit as run
    from mlcycle.audit._parts import PARTS

    kinds = [
        k
        for k, on in (("explain", explain), ("fairness", fairness), ("robustness", robustness))
        if on
    ]
    asked = bool(kinds)
    options = _options(
        sensitive=sensitive,
        positive=positive,
        min_group=min_group,
        eps=eps,
        attacks=attack,
        metric=metric,
        seed=seed,
        extra=option,
        kinds=kinds or list(PARTS),
    )
    if not asked:  # the default: every kind, those that do not apply skipped
        options = {k: v for k, v in options.items() if v}
    with state(ctx).open() as project:
        result = run(
            project,
            ref,
            kinds=kinds or None,
            options=options,
            store=not no_store,
            report=report,
            on_step=None if as_json else (lambda step: out.print(f"[dim]{step}…[/]")),
        )
    if as_json:
        print_json(result.to_dict())
        return
    for kind, document in result.parts.items():
        part = PARTS[kind]
        out.print(f"[bold]{part.heading}[/]")
        _show(part.card_blocks(document))
    for kind, why in result.skipped.items():
        out.print(f"[yellow]{kind} skipped[/]: {why}")
    stored = f"; stored as audit {result.record.id} of {result.ref}" if result.record else ""
    out.print(f"report: {result.report}{stored}")


@app.command()
def mitigate(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS of a binary classifier.")],
    sensitive: Annotated[
        str, typer.Option(help="The column whose groups are to be treated alike.")
    ],
    method: Annotated[
        str, typer.Option(help="threshold | exponentiated-gradient | grid-search.")
    ] = "threshold",
    constraint: Annotated[
        str, typer.Option(help="Fairlearn's name: demographic_parity, equalized_odds, ...")
    ] = "demographic_parity",
    eps: Annotated[
        float | None, typer.Option(help="The constraint's slack (tol, or the difference bound).")
    ] = None,
    positive: Annotated[str | None, typer.Option(help="The favourable class.")] = None,
    alias: Annotated[str | None, typer.Option(help="Put this alias on the variant.")] = None,
    no_register: Annotated[
        bool, typer.Option("--no-register", help="Measure only; register nothing.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the draw or of the retrainings.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A fairer variant of a version (Fairlearn), registered with lineage and measured beside it."""
    from mlcycle.audit import mitigate as run

    with state(ctx).open() as project:
        result = run(
            project,
            ref,
            sensitive=sensitive,
            method=method,
            constraint=constraint,
            eps=eps,
            positive_label=positive,
            alias=alias,
            register=not no_register,
            seed=seed,
            on_step=None if as_json else (lambda step: out.print(f"[dim]{step}…[/]")),
        )
    if as_json:
        print_json(result.to_dict())
        return
    keys = ("accuracy", "demographic_parity_difference", "equalized_odds_difference")
    view = Table("", *keys, title=f"{result.method} ({result.constraint}) on {result.sensitive}")
    for who, values in (("parent", result.parent), ("variant", result.variant)):
        view.add_row(who, *(f"{float(values[k]):.4f}" for k in keys))
    out.print(view)
    registered = result.variant_version or "not registered"
    out.print(f"accuracy lost: {result.accuracy_lost_points:.2f} points; variant: {registered}")
