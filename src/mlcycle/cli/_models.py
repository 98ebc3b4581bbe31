"""``mlcycle register``, ``mlcycle models …`` and ``mlcycle export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlcycle.cli._app import app, out, print_json, state
from mlcycle.errors import NotFoundError, SpecError
from mlcycle.store import ModelVersionRecord, parse_model_ref

models_app = typer.Typer(
    help="Registered models: versions, aliases, history.", no_args_is_help=True
)
app.add_typer(models_app, name="models")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why: recorded in the event log.")]


def model_version_json(v: ModelVersionRecord) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "ref": v.ref,
        "aliases": list(v.aliases),
        "run_id": v.run_id,
        "task": v.task,
        "metrics": v.metrics,
        "lineage": v.lineage,
        "signature": v.signature,
        "files": v.files,
        "description": v.description,
        "created_at": v.created_at.isoformat(),
        "created_by": v.created_by,
    }


def _headline(v: ModelVersionRecord) -> str:
    test = v.metrics.get("test", {})
    key = "accuracy" if "accuracy" in test else "rmse" if "rmse" in test else None
    return f"{key} {test[key]:.4f}" if key and test.get(key) is not None else "-"


@app.command()
def register(
    ctx: typer.Context,
    run_id: Annotated[
        str | None,
        typer.Argument(help="A finished training run (id or prefix); not with --onnx."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="The model's name.")] = "",
    alias: Annotated[str | None, typer.Option("--alias", help="Point this alias at it.")] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="Intended use, for the model card.")
    ] = None,
    onnx: Annotated[
        Path | None,
        typer.Option("--onnx", help="An ONNX model trained elsewhere (needs --data)."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="With --onnx: the dataset version it was trained on (D@V)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a run as the next version of a model (ONNX export + parity check), or an
    ONNX model trained elsewhere (--onnx FILE --data D@V)."""
    from mlcycle.registry import describe_parity
    from mlcycle.workflow import register as register_run
    from mlcycle.workflow import register_model

    if not name:
        raise SpecError("--name is required: the model's name")
    if onnx is None and data is not None:
        raise SpecError("--data goes with --onnx FILE (a run knows its dataset)")
    if onnx is not None and run_id is not None:
        raise SpecError(f"give a run ({run_id}) or --onnx {onnx}, not both")
    if onnx is not None and data is None:
        raise SpecError("--onnx needs --data NAME@VERSION: the dataset the model was trained on")
    if onnx is None and run_id is None:
        raise SpecError("which model? give a RUN id, or --onnx FILE --data NAME@VERSION")
    with state(ctx).open() as project:
        if onnx is not None:
            assert data is not None
            version = register_model(
                onnx,
                data=data,
                name=name,
                alias=alias,
                project=project,
                description=description,
            )
        else:
            assert run_id is not None
            version = register_run(project, run_id, name, alias=alias, description=description)
        if as_json:
            print_json(model_version_json(version))
            return
        parity = version.metrics.get("parity", {})
        aliases = " ".join(f"@{a}" for a in version.aliases)
        imported = version.lineage.get("imported")
        origin = (
            f"imported from {imported['source']} ({imported['format']})"
            if imported
            else f"from run {version.run_id}"
        )
        out.print(f"[green]registered[/] [bold]{version.ref}[/] {aliases} {origin}")
        if imported and imported.get("mapping"):
            out.print(f"inputs: {imported['mapping']}")
        out.print(f"parity: {describe_parity(parity)}; {_headline(version)}")


@models_app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List registered models with their latest version and aliases."""
    with state(ctx).open() as project:
        models = project.store.registry.list_models()
        if as_json:
            print_json(
                [
                    {
                        "name": m.name,
                        "versions": m.versions,
                        "latest": m.latest,
                        "aliases": m.aliases,
                    }
                    for m in models
                ]
            )
            return
        if not models:
            out.print("no models yet: mlcycle register RUN --name NAME")
            return
        table = Table("name", "versions", "latest", "aliases")
        for m in models:
            aliases = ", ".join(f"@{a}→{v}" for a, v in sorted(m.aliases.items()))
            table.add_row(m.name, str(m.versions), str(m.latest), aliases)
        out.print(table)


@models_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    as_json: JsonFlag = False,
) -> None:
    """Show a version: metrics, lineage, signature and files with their hashes."""
    with state(ctx).open() as project:
        v = project.store.registry.get(ref)
        if as_json:
            print_json(model_version_json(v))
            return
        aliases = " ".join(f"@{a}" for a in v.aliases)
        imported = v.lineage.get("imported")
        origin = f"imported ({imported['format']})" if imported else f"from run {v.run_id}"
        if imported and v.run_id:
            origin += f" by run {v.run_id}"
        out.print(f"[bold]{v.ref}[/] {aliases}  {v.task}  {origin}  by {v.created_by}")
        table = Table("metric", "test", title="test metrics", title_justify="left")
        for key, value in v.metrics.get("test", {}).items():
            table.add_row(key, "-" if value is None else f"{value:.4f}")
        out.print(table)
        inputs = Table("input", "kind", "shape", title="signature", title_justify="left")
        for spec in v.signature["inputs"]:
            inputs.add_row(spec["name"], spec["kind"], str(spec["shape"]))
        out.print(inputs)
        files = Table("file", "sha256", title="files", title_justify="left")
        for path, sha in sorted(v.files.items()):
            files.add_row(path, sha)
        out.print(files)
        out.print(
            f"lineage: dataset {v.lineage.get('dataset')}, spec {v.lineage.get('spec_sha256', '')[:12]}"
        )


@models_app.command("alias")
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[int, typer.Argument(help="The version to point at.", min=1)],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="champion, challenger, …")],
    reason: Reason = None,
) -> None:
    """Point an alias at a version (recorded: who, when, from, to, why)."""
    with state(ctx).open() as project:
        previous = project.store.registry.set_alias(
            name, version, alias_name, actor=project.actor, reason=reason
        )
        was = f" (was {previous})" if previous is not None else ""
        out.print(f"{name}@{alias_name} → {version}{was}")


@models_app.command("history")
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias_name: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Registrations, deletions and alias moves, oldest first."""
    with state(ctx).open() as project:
        project.store.registry.list_versions(name)  # NotFoundError for an unknown model
        events = project.store.registry.history(name, alias_name)
        if as_json:
            print_json(
                [
                    {
                        "at": e.at.isoformat(),
                        "actor": e.actor,
                        "action": e.action,
                        "reason": e.reason,
                        "details": e.details,
                    }
                    for e in events
                ]
            )
            return
        table = Table("when", "who", "what", "why")
        for e in events:
            d = e.details
            if e.action == "alias.moved":
                what = f"@{d['alias']}: {d.get('from') or '-'} → {d['to']}"
                what += " (rollback)" if d.get("rollback") else ""
            elif e.action == "model.registered":
                what = f"registered version {d.get('version')} from run {str(d.get('run'))[:8]}"
            else:
                what = f"{e.action} {d.get('version', '')}"
            table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, what, e.reason or "")
        out.print(table)


@models_app.command("rollback")
def rollback(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS to move back.")],
    reason: Reason = None,
) -> None:
    """Move an alias back to the version it pointed to before."""
    name, selector = parse_model_ref(ref)
    if not isinstance(selector, str):
        raise NotFoundError(f"rollback needs NAME@ALIAS, got {ref!r}")
    with state(ctx).open() as project:
        registry = project.store.registry
        target = registry.rollback_target(name, selector)
        previous = registry.set_alias(
            name, target, selector, actor=project.actor, reason=reason or "rollback", rollback=True
        )
        out.print(f"{name}@{selector} → {target} (rolled back from {previous})")


@models_app.command("diff")
def diff(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    v1: Annotated[str, typer.Argument(help="A version or alias.")],
    v2: Annotated[str, typer.Argument(help="Another version or alias.")],
    as_json: JsonFlag = False,
) -> None:
    """Two versions side by side: metrics, parameters, lineage."""
    with state(ctx).open() as project:
        a = project.store.registry.get(f"{name}@{v1}")
        b = project.store.registry.get(f"{name}@{v2}")
        rows: dict[str, list[Any]] = {}
        for key in dict.fromkeys([*a.metrics.get("test", {}), *b.metrics.get("test", {})]):
            rows[f"test.{key}"] = [
                a.metrics.get("test", {}).get(key),
                b.metrics.get("test", {}).get(key),
            ]
        pa_, pb = (
            a.lineage.get("params", {}).get("train", {}),
            b.lineage.get("params", {}).get("train", {}),
        )
        for key in dict.fromkeys([*pa_, *pb]):
            rows[f"train.{key}"] = [pa_.get(key), pb.get(key)]
        for key in ("run", "dataset", "dataset_fingerprint", "spec_sha256", "git"):
            rows[f"lineage.{key}"] = [a.lineage.get(key), b.lineage.get(key)]
        if as_json:
            print_json({"versions": [a.ref, b.ref], "rows": rows})
            return
        table = Table("", a.ref, b.ref)
        for label, (x, y) in rows.items():
            cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in (x, y)]
            if cells[0] != cells[1]:
                cells = [f"[bold]{c}[/]" for c in cells]
            table.add_row(label, *cells)
        out.print(table)


@models_app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[int, typer.Argument(help="The version to delete.", min=1)],
    reason: Reason = None,
) -> None:
    """Delete a version (refused while an alias points to it)."""
    with state(ctx).open() as project:
        project.store.registry.delete_version(name, version, actor=project.actor, reason=reason)
        out.print(f"deleted {name}@{version}")


@app.command()
def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME@VERSION.")],
    edge: Annotated[Path, typer.Option("--edge", help="Write an edge bundle into this folder.")],
    ort_format: Annotated[
        bool, typer.Option("--ort-format", help="Also write model.ort for ONNX Runtime Mobile.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Export a version as a folder a device runs with only onnxruntime and numpy."""
    import json as json_

    from mlcycle.edge import write_bundle

    with state(ctx).open() as project:
        v = project.store.registry.get(ref)
        files = {path: project.artifacts.read_bytes(sha) for path, sha in v.files.items()}
        info = write_bundle(
            edge,
            onnx_bytes=files["model.onnx"],
            signature=json_.loads(files["signature.json"]),
            model_ref=v.ref,
            card_md=files["card.md"].decode(),
            ort_format=ort_format,
        )
        if as_json:
            print_json(
                {
                    "path": str(info.path),
                    "files": info.files,
                    "size_bytes": info.size_bytes,
                    "latency_ms": info.latency_ms,
                    "ort_file": str(info.ort_file) if info.ort_file else None,
                }
            )
            return
        out.print(f"[green]edge bundle[/] of {v.ref} in {info.path}")
        out.print(
            f"size {info.size_bytes / 1024:.1f} KiB; single-row latency "
            f"{info.latency_ms:.3f} ms on this machine (ONNX Runtime, 1 thread)"
        )
