"""Structured pruning: the slicing is exact, the pruned run is an ordinary, smaller training run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mlcycle import ConflictError, NotFoundError, Project, SpecError
from mlcycle.compress import prune_model, prune_run
from mlcycle.registry import Predictor, make_signature
from mlcycle.spec import ModelSpec
from mlcycle.train import (
    FeatureLayout,
    MlcycleNet,
    build_model,
    encode,
    export_onnx,
    load_model,
    train,
    verify_export,
)
from mlcycle.workflow import register

MLP = {"train.model.hidden": [32, 16], "max_epochs": 8, "seed": 1}
CNN = {"train.model.channels": [8, 16], "train.model.hidden": [32], "max_epochs": 3, "seed": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, dict[str, str]]]:
    root = Path(tmp_path_factory.mktemp("prune")) / "proj"
    with Project.init(root, name="proj") as project:
        runs = {
            "mlp": train(project, data="sklearn:digits", overrides=MLP).run_id,
            "cnn": train(project, data="sklearn:digits", model="cnn", overrides=CNN).run_id,
        }
        yield project, runs


def _inputs(project: Project, config: dict[str, object]) -> dict[str, torch.Tensor]:
    table = project.datasets.load_split(project.datasets.get("digits@1"))["validation"]
    x = encode(table, FeatureLayout.from_dict(config["layout"]))  # type: ignore[arg-type]
    assert x.image is not None
    return {"image": torch.from_numpy(x.image)}


def _zero_incoming(layer: torch.nn.Module, units: list[int]) -> None:
    with torch.no_grad():
        layer.weight[units] = 0  # type: ignore[index]
        layer.bias[units] = 0  # type: ignore[index]


def _onnx(net: MlcycleNet, config: dict[str, object]) -> bytes:
    layout = FeatureLayout.from_dict(config["layout"])  # type: ignore[arg-type]
    return export_onnx(net, layout, list(config["classes"]), str(config["task"]))  # type: ignore[call-overload]


# -- the slicing, before any fine-tuning ----------------------------------------------------


def test_removing_dead_neurons_leaves_every_output_as_it_was(
    trained: tuple[Project, dict[str, str]],
) -> None:
    project, runs = trained
    net, config = load_model(project, runs["mlp"])
    spec = ModelSpec.model_validate(config["model"])
    # Units with no incoming weight and no bias output act(0) = 0: removing them changes nothing,
    # and they are the ones the criterion must rank last. Scattered, not the first half.
    _zero_incoming(net.body[0], [1, 2, 5, 7, 8, 11, 13, 14, 17, 19, 22, 23, 24, 27, 29, 31])
    _zero_incoming(net.body[3], [0, 3, 4, 9, 10, 12, 14, 15])
    inputs = _inputs(project, config)
    with torch.no_grad():
        before = net(**inputs)
        small, reduced = prune_model(net, spec, ratio=0.5)
        after = small(**inputs)
    assert reduced.hidden == (16, 8)
    assert sum(p.numel() for p in small.parameters()) == 64 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)
    # And the original network is left as it was.
    assert sum(p.numel() for p in net.parameters()) == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10


def test_removing_dead_channels_maps_each_channel_to_its_flattened_positions(
    trained: tuple[Project, dict[str, str]],
) -> None:
    project, runs = trained
    net, config = load_model(project, runs["cnn"])
    spec = ModelSpec.model_validate(config["model"])
    assert net.conv is not None
    _zero_incoming(net.conv[0], [0, 3, 5, 6])  # 8 -> 4 channels
    _zero_incoming(net.conv[3], [1, 2, 4, 8, 9, 10, 13, 15])  # 16 -> 8 channels (after a pool)
    _zero_incoming(net.body[1], list(range(0, 32, 2)))  # the hidden layer: 32 -> 16
    inputs = _inputs(project, config)
    with torch.no_grad():
        before = net(**inputs)
        small, reduced = prune_model(net, spec, ratio=0.5)
        after = small(**inputs)
    assert reduced.channels == (4, 8) and reduced.hidden == (16,)
    # 8x8 -> pool -> 4x4 -> pool -> 2x2: 8 channels x 4 positions feed the hidden layer.
    expected = (1 * 9 * 4 + 4) + (4 * 9 * 8 + 8) + (8 * 4 * 16 + 16) + (16 * 10 + 10)
    assert sum(p.numel() for p in small.parameters()) == expected
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


def test_the_target_picks_what_is_cut(trained: tuple[Project, dict[str, str]]) -> None:
    project, runs = trained
    net, config = load_model(project, runs["cnn"])
    spec = ModelSpec.model_validate(config["model"])
    _, channels_only = prune_model(net, spec, ratio=0.5, target="channels")
    _, neurons_only = prune_model(net, spec, ratio=0.5, target="neurons")
    _, tiny = prune_model(net, spec, ratio=0.99)
    assert (channels_only.channels, channels_only.hidden) == ((4, 8), (32,))
    assert (neurons_only.channels, neurons_only.hidden) == ((8, 16), (16,))
    assert (tiny.channels, tiny.hidden) == ((1, 1), (1,))  # at least one unit per layer


# -- a pruned run: smaller, fine-tuned, recorded, registrable ---------------------------------


@pytest.mark.slow
def test_a_pruned_mlp_run_is_smaller_evaluated_and_registers(
    trained: tuple[Project, dict[str, str]],
) -> None:
    project, runs = trained
    outcome = prune_run(project, runs["mlp"], ratio=0.5, fine_tune_epochs=4)
    assert outcome.widths_before == {"hidden": (32, 16)}
    assert outcome.widths_after == {"hidden": (16, 8)}
    assert outcome.parameters_before == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert outcome.parameters_after == 64 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10

    run = project.runs.get(outcome.run_id)
    assert run.status == "finished" and run.parent_run_id == runs["mlp"]
    assert run.tags["compress"] == "prune" and run.tags["pruned_from"] == runs["mlp"]
    assert run.params["train"]["model"]["hidden"] == [16, 8]
    assert run.params["train"]["max_epochs"] == 4
    assert run.params["prune"]["parameters_after"] == outcome.parameters_after
    assert run.params["prune"]["criterion"] == "l1_in_x_l1_out"
    assert run.summary["parameters"] == outcome.parameters_after
    assert outcome.accuracy_after == run.summary["test"]["accuracy"]
    assert outcome.accuracy_before == project.runs.get(runs["mlp"]).summary["test"]["accuracy"]
    assert outcome.accuracy_after is not None and outcome.accuracy_after > 0.85
    assert len(project.runs.metrics(run.id, "val_accuracy")) == run.summary["epochs_run"]

    net, config = load_model(project, outcome.run_id)
    original, original_config = load_model(project, runs["mlp"])
    # The graph loses the removed weights' float32 bytes (its fixed overhead stays).
    saved = len(_onnx(original, original_config)) - len(_onnx(net, config))
    assert saved >= 4 * (outcome.parameters_before - outcome.parameters_after)

    version = register(project, outcome.run_id, "digits-pruned")
    assert version.lineage["run"] == outcome.run_id
    assert version.metrics["parity"]["max_abs_diff"] <= 1e-4


@pytest.mark.slow
def test_a_pruned_cnn_exports_a_smaller_graph_that_matches_torch(
    trained: tuple[Project, dict[str, str]],
) -> None:
    project, runs = trained
    outcome = prune_run(project, runs["cnn"], ratio=0.5, fine_tune_epochs=2)
    assert outcome.widths_after == {"channels": (4, 8), "hidden": (16,)}
    assert outcome.parameters_after == (
        (1 * 9 * 4 + 4) + (4 * 9 * 8 + 8) + (8 * 4 * 16 + 16) + (16 * 10 + 10)
    )
    net, config = load_model(project, outcome.run_id)
    original, original_config = load_model(project, runs["cnn"])
    pruned_onnx = _onnx(net, config)
    saved = len(_onnx(original, original_config)) - len(pruned_onnx)
    assert saved >= 4 * (outcome.parameters_before - outcome.parameters_after)
    layout = FeatureLayout.from_dict(config["layout"])
    signature = make_signature(
        layout, task=config["task"], target=config["target"], classes=config["classes"], profile={}
    )
    test = project.datasets.load_split(project.datasets.get("digits@1"))["test"]
    parity = verify_export(net, layout, Predictor(pruned_onnx, signature, name="p"), test)
    assert parity["max_abs_diff"] <= 1e-4
    assert (
        outcome.test_after["accuracy"]
        == project.runs.get(outcome.run_id).summary["test"]["accuracy"]
    )


@pytest.mark.slow
def test_iterative_pruning_stops_before_the_validation_drop_passes_the_limit(
    trained: tuple[Project, dict[str, str]],
) -> None:
    project, runs = trained
    outcome = prune_run(project, runs["mlp"], max_drop=0.02, fine_tune_epochs=3)
    steps = outcome.steps
    assert steps and all(s.accepted for s in steps[:-1])
    # It stopped because a step went too far (not for want of units), and kept the one before.
    assert not steps[-1].accepted and outcome.val_before - steps[-1].val_score > 0.02
    kept = [s for s in steps if s.accepted]
    assert kept, "the first 25% step of a 32-16 MLP on digits stays within 2 points"
    assert outcome.val_before - outcome.val_after <= 0.02
    assert outcome.val_after == pytest.approx(kept[-1].val_score)
    assert outcome.parameters_after == kept[-1].parameters < outcome.parameters_before
    assert outcome.widths_after["hidden"] == kept[-1].hidden
    # Each step removes a quarter of what is left: 32 -> 24 -> 18 -> ...
    assert steps[0].hidden == (24, 12)
    assert project.runs.get(outcome.run_id).params["prune"]["steps"][0]["hidden"] == [24, 12]


@pytest.mark.slow
def test_unstructured_pruning_reports_sparsity_and_no_smaller_graph(
    trained: tuple[Project, dict[str, str]],
) -> None:
    project, runs = trained
    outcome = prune_run(project, runs["mlp"], ratio=0.5, structured=False, fine_tune_epochs=2)
    assert outcome.sparsity == pytest.approx(0.5, abs=0.01)
    assert outcome.parameters_after == outcome.parameters_before
    net, config = load_model(project, outcome.run_id)
    original, original_config = load_model(project, runs["mlp"])
    assert abs(len(_onnx(net, config)) - len(_onnx(original, original_config))) < 1024
    zeros = sum(int((p == 0).sum()) for n, p in net.named_parameters() if n.endswith("weight"))
    assert zeros >= 0.49 * sum(p.numel() for n, p in net.named_parameters() if n.endswith("weight"))


# -- bad input: one line naming the field, the value, what is allowed -------------------------


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_a_ratio_outside_zero_one_is_refused(
    trained: tuple[Project, dict[str, str]], ratio: float
) -> None:
    project, runs = trained
    with pytest.raises(SpecError, match=rf"prune ratio: {ratio!r} is outside \(0, 1\)"):
        prune_run(project, runs["mlp"], ratio=ratio)


def test_bad_requests_name_what_is_wrong(trained: tuple[Project, dict[str, str]]) -> None:
    project, runs = trained
    with pytest.raises(SpecError, match=r"give ratio .* or max_drop"):
        prune_run(project, runs["mlp"])
    with pytest.raises(SpecError, match=r"give ratio .* or max_drop"):
        prune_run(project, runs["mlp"], ratio=0.5, max_drop=0.01)
    with pytest.raises(SpecError, match=r"max_drop: 1\.5 is outside \[0, 1\)"):
        prune_run(project, runs["mlp"], max_drop=1.5)
    with pytest.raises(SpecError, match=r"'channels' needs a cnn; .* is a 'mlp' .*auto, neurons"):
        prune_run(project, runs["mlp"], ratio=0.5, target="channels")
    with pytest.raises(SpecError, match="prune target: 'filters' is not one of auto, neurons"):
        prune_run(project, runs["mlp"], ratio=0.5, target="filters")  # type: ignore[arg-type]


def test_runs_that_cannot_be_pruned_are_refused(trained: tuple[Project, dict[str, str]]) -> None:
    project, _ = trained
    running = project.runs.start("busy")
    with pytest.raises(ConflictError, match=f"run {running.id} is running: only a finished"):
        prune_run(project, running.id, ratio=0.5)
    running.finish("finished")
    with pytest.raises(NotFoundError, match=f"run {running.id} has no trained model"):
        prune_run(project, running.id, ratio=0.5)
    custom = train(
        project,
        data="sklearn:digits",
        overrides={
            "train.model.kind": "custom",
            "train.model.factory": "tests.train.custom_models:tiny",
            "max_epochs": 1,
        },
    ).run_id
    with pytest.raises(SpecError, match=r"'custom' \(run .*\) cannot be pruned; .* mlp, cnn"):
        prune_run(project, custom, ratio=0.5)


def test_a_model_without_hidden_layers_has_nothing_to_prune() -> None:
    layout = FeatureLayout(("a", "b"), (), {}, None, None, (0.0, 0.0), (1.0, 1.0))
    spec = ModelSpec(hidden=())
    with pytest.raises(SpecError, match=r"finds nothing to cut in this mlp \(hidden \[\]\)"):
        prune_model(build_model(spec, layout, "multiclass", 3), spec, ratio=0.5)


@pytest.mark.slow
def test_a_distilled_student_is_fine_tuned_with_its_teacher(
    trained: tuple[Project, dict[str, str]],
) -> None:
    project, runs = trained
    register(project, runs["mlp"], "digits-teacher")
    student = train(
        project,
        data="sklearn:digits",
        overrides={**MLP, "max_epochs": 2, "train.distill.teacher": "digits-teacher"},
    ).run_id
    outcome = prune_run(project, student, ratio=0.5, fine_tune_epochs=2)
    distilled = project.runs.get(outcome.run_id).params["train"]["distill"]
    assert distilled["teacher"] == "digits-teacher@1"  # pinned by the student's run, kept
    assert outcome.widths_after == {"hidden": (16, 8)}
