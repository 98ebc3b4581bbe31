"""``mlcycle data``: version datasets and look at them."""

from __future__ import annotations

import re
import typing
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlcycle.cli._app import app, err, out, print_json, state
from mlcycle.cli._render import dataset_version_json, render_profile
from mlcycle.errors import DataError, SpecError
from mlcycle.spec import ColumnRole, ColumnType, Task

if TYPE_CHECKING:
    from mlcycle._datasets import DatasetAdded

data_app = typer.Typer(
    help="Version datasets and inspect their schema and profile.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

_ROLES: tuple[str, ...] = typing.get_args(ColumnRole)
_TYPES: tuple[str, ...] = typing.get_args(ColumnType)
_TASKS: tuple[str, ...] = typing.get_args(Task)
# The spec's way of saying a fix ("roles: {zip: id}") and the flag that does it here.
_SPEC_FIX = re.compile(
    r"\b(roles|types): \{([^{}:]+): (\w+)\}|\btask: (binary|multiclass|regression)\b"
)


def parse_assignments(
    flag: str, pairs: list[str], allowed: tuple[str, ...], example: str
) -> dict[str, str]:
    """``COLUMN=VALUE`` pairs of a repeatable flag; a value must be one of ``allowed``.

    Raises:
        SpecError: a pair has no ``=``, no column, or a value not in ``allowed``.

    Example:
        >>> parse_assignments("--role", ["zip=id"], ("id", "feature"), "zip_code=id")
        {'zip': 'id'}
    """
    found: dict[str, str] = {}
    for pair in pairs:
        column, sep, value = pair.rpartition("=")
        if not sep or not column:
            raise SpecError(f"{flag} {pair!r}: expected COLUMN=VALUE, e.g. {flag} {example}")
        if value not in allowed:
            raise SpecError(f"{flag} {pair!r}: {value!r} is not one of {', '.join(allowed)}")
        found[column] = value
    return found


def with_flags(message: str) -> str:
    """A message suggesting spec settings, with the ``data add`` flags that do the same.

    Example:
        >>> with_flags("column 'x' is missing; set roles: {x: ignore}")
        "column 'x' is missing; set roles: {x: ignore} (--role x=ignore)"
    """

    def flag(match: re.Match[str]) -> str:
        if match.group(4):
            return f"{match.group(0)} (--task {match.group(4)})"
        name = "--role" if match.group(1) == "roles" else "--type"
        return f"{match.group(0)} ({name} {match.group(2)}={match.group(3)})"

    return _SPEC_FIX.sub(flag, message)


def _print_added(added: DatasetAdded) -> None:
    version = added.version
    summary, *_ = str(added).splitlines()
    verb, _, rest = summary.partition(" ")
    out.print(f"[green]{escape(verb)}[/] {escape(rest)}")
    if not added.is_latest:
        out.print(f"to train on it: mlcycle train --data {version.ref}")
    out.print(f"fingerprint {version.fingerprint[:12]}…")
    counts = added.split.counts
    out.print(
        f"split: train {counts['train']}, validation {counts['validation']}, test {counts['test']}"
    )
    if added.retargeted:
        out.print(f"[yellow]warning:[/] {escape(added.retargeted)}")
    for note in added.notes:
        out.print(f"[cyan]note:[/] {escape(note)}")
    for warning in added.warnings:
        out.print(f"[yellow]warning:[/] {escape(with_flags(warning))}")


@data_app.command("add")
def add(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="sklearn:NAME, a CSV/Parquet file or folder, or a dataset named in the spec."
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="Dataset name (default: from the source).")
    ] = None,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    task: Annotated[
        str | None,
        typer.Option(help=f"The learning task: {' | '.join(_TASKS)} (default: inferred)."),
    ] = None,
    roles: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help=f"COLUMN=ROLE, repeatable; ROLE one of {', '.join(_ROLES)} (as roles: in the spec).",
        ),
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help=f"COLUMN=TYPE, repeatable; TYPE one of {', '.join(_TYPES)} (as types: in the spec).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Version a dataset: the same content twice gives the same version."""
    if task is not None and task not in _TASKS:
        raise SpecError(f"--task {task!r}: expected one of {', '.join(_TASKS)}")
    role_map = parse_assignments("--role", roles or [], _ROLES, "customer_id=id")
    type_map = parse_assignments("--type", types or [], _TYPES, "zip_code=categorical")
    with state(ctx).open() as project:
        try:
            with err.status(f"reading and profiling {source}…"):
                added = project.datasets.add(
                    source,
                    name=name,
                    target=target,
                    task=typing.cast(Task | None, task),
                    roles=typing.cast(dict[str, ColumnRole], role_map),
                    types=typing.cast(dict[str, ColumnType], type_map),
                )
        except DataError as exc:
            raise DataError(with_flags(str(exc))) from None
        if as_json:
            print_json(
                {
                    **dataset_version_json(added.version),
                    "created": added.created,
                    "latest": added.latest.version,
                    "is_latest": added.is_latest,
                    "split": added.split.counts,
                    "notes": added.notes,
                    "warnings": added.warnings,
                }
            )
            return
        _print_added(added)


def _listing(project: Any) -> list[dict[str, Any]]:
    rows = []
    for d in project.datasets.list():
        latest = project.datasets.get(d.name)
        rows.append(
            {
                "name": d.name,
                "versions": d.versions,
                "latest": d.latest,
                "rows": latest.n_rows,
                "target": latest.schema.get("target"),
                "task": latest.schema.get("task"),
                "created_at": d.created_at.isoformat(),
            }
        )
    return rows


@data_app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List datasets and their latest versions."""
    with state(ctx).open() as project:
        datasets = _listing(project)
        if as_json:
            print_json(datasets)
            return
        if not datasets:
            out.print("no datasets yet: mlcycle data add sklearn:breast_cancer")
            return
        table = Table("name", "versions", "latest", "rows", "target", "task", "created")
        for d in datasets:
            table.add_row(
                d["name"],
                str(d["versions"]),
                f"@{d['latest']}",
                str(d["rows"]),
                escape(str(d["target"] or "-")),
                str(d["task"] or "-"),
                d["created_at"][:16].replace("T", " "),
            )
        out.print(table)


@data_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: latest).")],
    as_json: JsonFlag = False,
) -> None:
    """Show a version's schema and profile."""
    with state(ctx).open() as project:
        version = project.datasets.get(ref)
        if as_json:
            print_json(dataset_version_json(version))
            return
        render_profile(out, version)
