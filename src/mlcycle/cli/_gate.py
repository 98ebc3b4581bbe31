"""``mlcycle gate``: the loop's champion/challenger gate for a challenger trained by hand."""

from __future__ import annotations

from typing import Annotated

import typer

from mlcycle.cli._app import app, out, print_json, state
from mlcycle.errors import SpecError

REJECTED = 3  # like a monitoring alert: a script can tell "ran, said no" from an error


@app.command()
def gate(
    ctx: typer.Context,
    champion: Annotated[str, typer.Argument(help="The model serving now, e.g. cancer@champion.")],
    challenger: Annotated[str, typer.Argument(help="The candidate, e.g. cancer@3.")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="DATASET@VERSION of rows neither model trained on (default: the test split "
            "of the dataset both trained on).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Would the loop promote CHALLENGER over CHAMPION? Exit 0 if yes, 3 if not.

    Same policy as the loop (``loop.gate`` in mlcycle.yaml): the paired bootstrap
    interval of the gain must exclude 0, the gain reach ``min_delta``, and every
    guard hold. Nothing is moved: promote with ``mlcycle models alias``.
    """
    from mlcycle.loop import judge_versions

    with state(ctx).open() as project:
        try:
            judged = judge_versions(project, champion, challenger, data=data, seed=seed)
        except SpecError as exc:  # the API's argument, said the CLI's way
            raise SpecError(str(exc).replace("data=", "--data ")) from None
    verdict = judged.verdict
    if as_json:
        print_json(
            {
                "champion": judged.champion,
                "challenger": judged.challenger,
                "holdout": judged.holdout,
                **verdict.to_dict(),
            }
        )
    else:
        word = "[green]promote[/]" if verdict.promote else "[red]reject[/]"
        out.print(
            f"{word} {judged.challenger} over {judged.champion} on {judged.holdout}: "
            f"{verdict.metric} {verdict.champion:.4g} -> {verdict.challenger:.4g}"
        )
        for reason in verdict.reasons:
            out.print(f"  - {reason}")
    if not verdict.promote:
        raise typer.Exit(REJECTED)
