"""``mlcycle demo``: the whole life of a model in a throw-away project, in a few minutes.

Loan applications (the bundled stream of :mod:`mlcycle.demo`) are versioned,
a model is trained, evaluated, registered as ``@champion``, bundled for the
edge and served on loopback. The stream is replayed through the server with
its labels posted back late; part-way through, the population and the rules
change. The loop notices, waits for fresh labels, retunes (a short Optuna
study from the champion's parameters whose best trial is the challenger), gates the
challenger against the champion on fresh held-out rows, sends it half the
traffic, promotes it, and the server hot-swaps. A monitoring report, a batch
scoring and one HTML story of the whole run close it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml

from mlcycle.cli._app import app, out
from mlcycle.cli._progress import EpochBar
from mlcycle.cli._render import render_profile
from mlcycle.cli._ui import ui_command
from mlcycle.project import SPEC_FILE, Project

MODEL = "loans"
CHUNK = 300
SPEC: dict[str, Any] = {
    "project": {"name": "demo"},
    "train": {"max_epochs": 40, "model": {"hidden": [32]}, "lr": 0.01},
    "evaluate": {"bootstrap": 300},
    # The loop retunes: a short study (Hyperband stops the poor trials) instead of one
    # run, over a small space so that it costs about what that run did.
    "tune": {
        "max_epochs": 8,
        "space": {
            "lr": {"low": 0.002, "high": 0.03, "log": True},
            "model.activation": {"choices": ["relu", "tanh", "gelu"]},
            "model.width": {"choices": [16, 32, 64]},
        },
    },
    "loop": {
        "model": MODEL,
        "data": "window",
        "min_labels": 1200,
        "window_rows": 2000,
        "holdout": 0.3,
        "retrain": {"tune": {"n_trials": 4}},
        "gate": {"bootstrap": 500},
        # A canary of 20 requests on a busy laptop times both models on a few milliseconds:
        # the latency guard allows 4x there (2x by default), the accuracy guard is unchanged.
        "rollout": {
            "mode": "canary",
            "steps": [0.5],
            "bake_s": 0,
            "min_requests": 20,
            "max_latency_ratio": 4.0,
        },
    },
}


def _settle() -> None:
    time.sleep(0.5)  # the server writes its log every 0.1 s and follows aliases every 0.2 s


def _served_by(versions: dict[int, int]) -> str:
    total = sum(versions.values()) or 1
    return ", ".join(f"v{v} {n / total:.0%}" for v, n in sorted(versions.items()))


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Make the demo project here (default: a new temporary folder)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """The whole loop on a bundled stream whose population and rules change part-way."""
    from mlcycle.batch import score_file
    from mlcycle.cli._train import headline_table
    from mlcycle.demo import FEATURES, TARGET, chunks, loan_rows, replaying
    from mlcycle.edge import write_bundle
    from mlcycle.loop import history as decisions
    from mlcycle.loop import read_state, render_story, tick
    from mlcycle.monitor import monitor
    from mlcycle.registry import describe_parity, load
    from mlcycle.train import train
    from mlcycle.tune import study_run
    from mlcycle.workflow import register

    root = (directory or Path(tempfile.mkdtemp(prefix="mlcycle-demo-"))).resolve()
    Project.init(root, name="demo").close()
    (root / SPEC_FILE).write_text(yaml.safe_dump(SPEC, sort_keys=False))
    with Project.open(root) as project:
        out.rule("[bold]mlcycle demo")
        out.print(f"project: {project.root} (store: {project.store.backend})")
        out.print("[bold]1. version a bundled dataset[/]: 3,000 loan applications")
        history = loan_rows(3000, changed=False, seed=1)
        added = project.datasets.add(history, name=MODEL, target=TARGET)
        again = project.datasets.add(history, name=MODEL, target=TARGET)
        out.print(
            f"   {added.version.ref}; adding the same rows again gives {again.version.ref} "
            f"({'new' if again.created else 'the same version'})"
        )
        render_profile(out, added.version)

        out.print("[bold]2. train an MLP[/] (early stopping on validation loss)")
        with EpochBar(show=not quiet) as bar:
            outcome = train(project, data=added.version.ref, on_progress=bar)
        s = outcome.summary
        out.print(
            f"   best epoch {s['best_epoch']} of {s['epochs_run']}, "
            f"{s['samples_per_s']:.0f} samples/s, {s['parameters']:,} parameters"
        )
        out.print("[bold]3. evaluate on the held-out test split[/]")
        out.print(headline_table(outcome))
        out.print(f"   report: [bold]{outcome.report}[/]")

        out.print("[bold]4. register the model as @champion[/] (ONNX export + parity check)")
        version = register(project, outcome.run_id, MODEL, alias="champion")
        parity = version.metrics["parity"]
        out.print(
            f"   {version.ref} @champion: {describe_parity(parity)}; "
            f"{len(version.files)} files, each with its sha256"
        )
        out.print("[bold]5. export an edge bundle[/] (runs with onnxruntime + numpy only)")
        files = {path: project.artifacts.read_bytes(sha) for path, sha in version.files.items()}
        bundle = write_bundle(
            project.root / "edge" / MODEL,
            onnx_bytes=files["model.onnx"],
            signature=json.loads(files["signature.json"]),
            model_ref=version.ref,
            card_md=files["card.md"].decode(),
        )
        out.print(
            f"   {bundle.path}: {bundle.size_bytes / 1024:.1f} KiB, single-row latency "
            f"{bundle.latency_ms:.3f} ms on this machine"
        )

        out.print(
            "[bold]6. serve @champion on loopback[/] and replay the stream; labels come back "
            "late; the loop checks after every 300 applications"
        )
        with replaying(project.root, f"{MODEL}@champion") as client:
            for i, frame in enumerate(chunks(900, CHUNK, changed=False, seed=100)):
                served = client.replay(frame, FEATURES, TARGET)
                _settle()
                steps = tick(project, MODEL).steps
                out.print(
                    f"   applications {i * CHUNK + 1:>5}-{(i + 1) * CHUNK}: accuracy "
                    f"{served['accuracy']:.3f} ({_served_by(served['versions'])}); "
                    f"loop: {'; '.join(steps)}"
                )
            ordered = sorted(client.latencies)
            out.print(
                f"   {len(ordered)} requests of {client.per_request} rows: median latency "
                f"{ordered[len(ordered) // 2]:.2f} ms, p99 "
                f"{ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]:.2f} ms"
            )

            out.print(
                "[bold]7. the world changes[/]: a new population of applicants, and new rules"
            )
            promoted_at, after_promotion = None, 0
            for i, frame in enumerate(chunks(7200, CHUNK, changed=True, seed=10_000)):
                served = client.replay(frame, FEATURES, TARGET)
                _settle()
                steps = tick(project, MODEL).steps
                out.print(
                    f"   applications {900 + i * CHUNK + 1:>5}-{900 + (i + 1) * CHUNK}: accuracy "
                    f"{served['accuracy']:.3f} ({_served_by(served['versions'])})"
                )
                for step in steps:
                    out.print(f"      [bold]loop[/] {step}")
                if any(s.startswith(("rollout_step", "promoted")) for s in steps):
                    _settle()  # servers follow the traffic split and aliases within a poll
                if promoted_at is None and any(s.startswith("promoted") for s in steps):
                    promoted_at = i
                if promoted_at is not None:
                    after_promotion += 1
                    if after_promotion > 2:
                        break
        state = read_state(project.store, MODEL)
        champion = project.store.registry.get(f"{MODEL}@champion")
        if champion.version == 1:
            out.print("   [red]the loop did not promote a new champion[/]")
        else:
            out.print(
                f"   {MODEL}@{champion.version} is @champion after {state.cycle} cycle(s); "
                "the server swapped to it without dropping a request"
            )
        retuned = [e for e in decisions(project.store, MODEL) if e.action == "loop.retuned"]
        if retuned:
            study = study_run(project, retuned[0].details["study"])
            out.print(
                f"   the last challenger was the best of {study.summary['n_trials']} trials of "
                f"study {study.name} (mlcycle tune show {study.name}); its report: "
                f"[bold]{study.summary.get('report')}[/]"
            )

        out.print("[bold]8. monitor the old champion on new applications[/] (with labels)")
        incoming = project.root / "after-the-change.parquet"
        loan_rows(1000, changed=True, seed=7).to_parquet(incoming)
        found = monitor(
            project,
            f"{MODEL}@1",
            current=incoming,
            html=project.root / "monitor.html",
        )
        for alert in found.alerts:
            out.print(f"   [red]alert:[/] {alert}")
        out.print(f"   monitoring report: [bold]{found.html}[/]")

        out.print("[bold]9. batch-score a file with @champion[/] (streamed, resumable, logged)")
        unlabelled = project.root / "incoming.parquet"
        loan_rows(5000, changed=True, seed=8)[FEATURES].to_parquet(unlabelled)
        summary = score_file(
            f"{MODEL}@champion", unlabelled, project.root / "scored.parquet", project=project
        )
        out.print(
            f"   {summary.scored} rows scored ({summary.rejected} rejected) at "
            f"{summary.rows_per_s:,.0f} rows/s into {summary.output}"
        )
        new_rows = loan_rows(2000, changed=True, seed=9)
        for ref in (f"{MODEL}@1", f"{MODEL}@champion"):
            predicted = project.store.registry.get(ref)
            labels = load(predicted.ref, project=project).predict(new_rows[FEATURES]).labels
            accuracy = float(np.mean(labels == new_rows[TARGET].to_numpy()))
            out.print(f"   {predicted.ref}: accuracy {accuracy:.3f} on 2,000 new applications")

        story = render_story(project, MODEL, project.root / "story.html")
        out.print(
            f"[bold]10. the story[/] (timeline, decisions and their reasons): [bold]{story}[/]"
        )
    out.print("[green]demo finished[/]")
    out.print(f"browse it: [bold]{ui_command(root)}[/]", soft_wrap=True)
