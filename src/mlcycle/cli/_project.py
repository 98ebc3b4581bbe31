"""``mlcycle init`` and ``mlcycle demo``."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from mlcycle.cli._app import app, out
from mlcycle.cli._render import render_profile
from mlcycle.project import SPEC_FILE, Project


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to make a project of.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder's).")] = None,
) -> None:
    """Create a project: a commented mlcycle.yaml and a .mlcycle/ folder."""
    with Project.init(directory, name=name) as project:
        out.print(
            f"[green]created[/] project [bold]{project.spec.project.name}[/] in {project.root}"
        )
        out.print(f"edit {project.root / SPEC_FILE}, then: mlcycle data add sklearn:breast_cancer")


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Make the demo project here (default: a new temporary folder)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Run the lifecycle so far on a bundled dataset, in a throw-away project."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mlcycle.batch import score_file
    from mlcycle.cli._train import headline_table
    from mlcycle.edge import write_bundle
    from mlcycle.monitor import monitor
    from mlcycle.registry import register
    from mlcycle.train import train

    root = directory or Path(tempfile.mkdtemp(prefix="mlcycle-demo-"))
    with Project.init(root, name="demo") as project:
        out.rule("[bold]mlcycle demo")
        out.print(f"project: {project.root} (store: {project.store.backend})")
        out.print("[bold]1. version a bundled dataset[/]: sklearn:breast_cancer")
        added = project.datasets.add("sklearn:breast_cancer")
        again = project.datasets.add("sklearn:breast_cancer")
        out.print(
            f"   {added.version.ref}; adding it again gives "
            f"{again.version.ref} ({'new' if again.created else 'the same version'})"
        )
        counts = added.split.counts
        out.print(
            f"   split (stratified, seed 0): train {counts['train']}, "
            f"validation {counts['validation']}, test {counts['test']}"
        )
        render_profile(out, added.version)
        out.print("[bold]2. train an MLP[/] (early stopping on validation loss)")
        outcome = train(project, data=added.version.ref, quiet=quiet)
        s = outcome.summary
        out.print(
            f"   best epoch {s['best_epoch'] + 1} of {s['epochs_run']}, "
            f"{s['samples_per_s']:.0f} samples/s, {s['parameters']:,} parameters"
        )
        out.print("[bold]3. evaluate on the held-out test split[/]")
        out.print(headline_table(outcome))
        out.print(f"   run {outcome.run_id}")
        out.print(f"   report: [bold]{outcome.report}[/]")

        out.print("[bold]4. register the model as @champion[/] (ONNX export + parity check)")
        version = register(project, outcome.run_id, "cancer", alias="champion")
        parity = version.metrics["parity"]
        out.print(
            f"   {version.ref} @champion: ONNX Runtime matches PyTorch on {parity['rows']} "
            f"test rows (max difference {parity['max_abs_diff']:.1g}); "
            f"{len(version.files)} files, each with its sha256"
        )
        out.print("[bold]5. export an edge bundle[/] (runs with onnxruntime + numpy only)")
        files = {path: project.artifacts.read_bytes(sha) for path, sha in version.files.items()}
        bundle = write_bundle(
            project.root / "edge" / "cancer",
            onnx_bytes=files["model.onnx"],
            signature=json.loads(files["signature.json"]),
            model_ref=version.ref,
            card_md=files["card.md"].decode(),
        )
        out.print(
            f"   {bundle.path}: {bundle.size_bytes / 1024:.1f} KiB, single-row latency "
            f"{bundle.latency_ms:.3f} ms on this machine"
        )

        out.print("[bold]6. serve @champion on loopback[/] (KServe V2 + /predict) and send traffic")
        parts = project.datasets.load_split(added.version)
        test = parts["test"]
        shifted = parts["train"].slice(0, 200)
        for column in ("mean_texture", "worst_texture", "texture_error"):
            i = shifted.column_names.index(column)
            shifted = shifted.set_column(i, column, pc.multiply(shifted.column(column), 1.8))
        served = _serve_and_send(project.root, test, shifted)
        out.print(
            f"   {served['requests']} requests answered by {served['versions']}; median latency "
            f"{served['p50_ms']:.2f} ms, p99 {served['p99_ms']:.2f} ms; "
            f"accuracy on them {served['accuracy']:.3f}; late labels sent back to /feedback"
        )
        out.print(
            f"   then {served['shifted']} requests whose texture measurements drifted upwards"
        )
        out.print("[bold]7. monitor the last 200 logged requests[/] against the training rows")
        found = monitor(project, "cancer@champion", last=200)
        for alert in found.alerts:
            out.print(f"   [red]alert:[/] {alert}")
        if found.healthy:
            out.print("   no drift found")

        out.print("[bold]8. batch-score a file[/] (streamed, resumable, logged for monitoring)")
        incoming = project.root / "incoming.parquet"
        pq.write_table(project.datasets.load(added.version).drop_columns(["target"]), incoming)
        summary = score_file(
            "cancer@champion", incoming, project.root / "scored.parquet", project=project
        )
        out.print(
            f"   {summary.scored} rows scored ({summary.rejected} rejected) at "
            f"{summary.rows_per_s:,.0f} rows/s into {summary.output}"
        )
    out.print("[green]demo finished[/]")


def _serve_and_send(root: Path, rows: Any, shifted: Any) -> dict[str, Any]:
    """Serve the champion in this process; replay ``rows`` then ``shifted``, one request each."""
    import http.client
    import time

    from mlcycle.serve import ServeSettings, create_app, serve_in_thread

    records = rows.drop_columns(["target"]).to_pylist()
    truth = rows.column("target").to_pylist()
    app = create_app(ServeSettings(project=root, ref="cancer@champion", poll_s=0))
    latencies, correct, versions, feedback = [], 0, set(), []

    with serve_in_thread(app) as url:
        # One keep-alive connection to the loopback server, as a client library would use.
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)

        def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
            path = "/" + url.split("/", 3)[3]
            connection.request(
                "POST", path, json.dumps(body).encode(), {"content-type": "application/json"}
            )
            response = connection.getresponse()
            answer: dict[str, Any] = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"the demo server answered {response.status}: {answer}")
            return answer

        for i, (record, label) in enumerate(zip(records, truth, strict=True)):
            started = time.perf_counter()
            answer = post(f"{url}/predict", {"records": [record], "id": f"demo-{i}"})
            latencies.append((time.perf_counter() - started) * 1000)
            versions.add(f"{answer['model']}@{answer['version']}")
            correct += answer["labels"][0] == label
            feedback.append({"request_id": f"demo-{i}", "label": label})
        post(f"{url}/feedback", {"labels": feedback})
        for i, record in enumerate(shifted.drop_columns(["target"]).to_pylist()):
            post(f"{url}/predict", {"records": [record], "id": f"demo-shifted-{i}"})
        connection.close()
    ordered = sorted(latencies)
    return {
        "requests": len(records),
        "versions": ", ".join(sorted(versions)),
        "p50_ms": ordered[len(ordered) // 2],
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "accuracy": correct / max(len(records), 1),
        "shifted": shifted.num_rows,
    }
