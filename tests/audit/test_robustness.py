"""Robustness: our FGSM and PGD against the Adversarial Robustness Toolbox's, the audit, adversarial training."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from torch import nn

from mlcycle import Project
from mlcycle.audit import attack_rows, eps_key, robustness_audit
from mlcycle.errors import ConflictError, SpecError
from mlcycle.registry._add import VersionDraft, add_version
from mlcycle.spec import AdversarialSpec, ModelSpec, TrainSpec, parse_spec
from mlcycle.train import (
    AttackBudget,
    Encoded,
    EpochReport,
    FeatureLayout,
    MlcycleNet,
    TrainData,
    build_model,
    fgsm,
    fit,
    pgd,
    train,
)
from mlcycle.train._adversarial import attack_loss, perturb
from mlcycle.workflow import register

# -- our attacks against ART's, on a small network trained here on real data ------------


def _trained(layout: FeatureLayout, x: dict[str, torch.Tensor], y: torch.Tensor) -> MlcycleNet:
    torch.manual_seed(0)
    net = build_model(ModelSpec(hidden=[32]), layout, "multiclass", int(y.max()) + 1)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        attack_loss(net(**x), y).backward()
        optimiser.step()
    return net.eval()


@functools.cache
def _cancer() -> tuple[MlcycleNet, dict[str, torch.Tensor], torch.Tensor, AttackBudget]:
    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    names = tuple(f"f{i}" for i in range(x.shape[1]))
    mean, std = x.mean(axis=0), x.std(axis=0)
    layout = FeatureLayout(
        names, (), {}, None, None, tuple(map(float, mean)), tuple(map(float, std))
    )
    inputs, y = {"numeric": torch.from_numpy(x)}, torch.from_numpy(data.target).long()
    net = _trained(layout, inputs, y)
    return net, {"numeric": inputs["numeric"][:96]}, y[:96], AttackBudget.of(layout)


@functools.cache
def _digits() -> tuple[MlcycleNet, dict[str, torch.Tensor], torch.Tensor, AttackBudget]:
    data = load_digits()
    pixels = data.images.astype(np.float32)
    layout = FeatureLayout(
        (), (), {}, "image", (8, 8), (), (), float(pixels.mean()), float(pixels.std())
    )
    inputs, y = {"image": torch.from_numpy(pixels)}, torch.from_numpy(data.target).long()
    net = _trained(layout, inputs, y)
    return net, {"image": inputs["image"][:96]}, y[:96], AttackBudget.of(layout, pixels)


class _OneInput(nn.Module):
    """The network with its one input as ``x``: the face ART's PyTorchClassifier expects."""

    def __init__(self, net: MlcycleNet, name: str) -> None:
        super().__init__()
        self.net, self.name = net, name

    def forward(self, x: torch.Tensor) -> Any:
        return self.net(**{self.name: x})


def _art(net: MlcycleNet, name: str, x: torch.Tensor, budget: AttackBudget) -> Any:
    from art.estimators.classification import PyTorchClassifier

    clip = (budget.pixel_low, budget.pixel_high) if name == "image" else None
    return PyTorchClassifier(
        _OneInput(net, name),
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=int(net.n_outputs),
        clip_values=clip,
        device_type="cpu",
    )


def _radius(budget: AttackBudget, name: str, eps: float, x: torch.Tensor) -> Any:
    """Our radius as ART takes it: one per column, one number for every pixel."""
    radius = budget.radius(name, eps, x).numpy()
    return float(radius) if name == "image" else radius.astype(np.float32)


@pytest.mark.parametrize("case", [_cancer, _digits], ids=["tabular", "image"])
def test_our_fgsm_and_pgd_equal_the_adversarial_robustness_toolbox(case: Any) -> None:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescentPyTorch
    from art.utils import random_sphere

    net, inputs, y, budget = case()
    (name,) = inputs
    x = inputs[name]
    classifier = _art(net, name, x, budget)
    eps, steps = 0.25, 5
    radius = _radius(budget, name, eps, x)

    ours = fgsm(net, inputs, y, budget, eps=eps)[name].numpy()
    theirs = FastGradientMethod(
        classifier, norm=np.inf, eps=radius, eps_step=radius, batch_size=len(x)
    ).generate(x.numpy(), y.numpy())
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert np.abs(ours - x.numpy()).max() > 0  # the attack moved something

    step = _radius(budget, name, 0.1, x)
    for restarts in (0, 1):  # no random start, and the same random start as ART's
        start = None
        if restarts:
            np.random.seed(7)
            drawn = random_sphere(len(x), int(np.prod(x.shape[1:])), radius, np.inf)
            start = {name: torch.from_numpy(drawn.reshape(x.shape).astype(np.float32))}
        moved = perturb(net, inputs, y, budget, eps=eps, steps=steps, step_size=0.1, start=start)
        ours = moved[name].numpy()
        np.random.seed(7)
        theirs = ProjectedGradientDescentPyTorch(
            classifier,
            norm=np.inf,
            eps=radius,
            eps_step=step,
            max_iter=steps,
            num_random_init=restarts,
            batch_size=len(x),
            verbose=False,
        ).generate(x.numpy(), y.numpy())
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_pgd_stays_in_its_ball_and_a_seed_fixes_its_start() -> None:
    net, inputs, y, budget = _digits()
    x = inputs["image"]

    def attacked(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return pgd(net, inputs, y, budget, eps=0.1, steps=3, generator=generator)["image"]

    first, again, other = attacked(1), attacked(1), attacked(2)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert float((first - x).abs().max()) <= 0.1 * 16 + 1e-5  # digits' pixels run 0..16
    assert float(first.min()) >= 0 and float(first.max()) <= 16


def test_adversarial_training_resumed_from_a_checkpoint_ends_with_the_same_weights() -> None:
    data = load_breast_cancer()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    names = tuple(f"f{i}" for i in range(x.shape[1]))
    mean, std = x[:400].mean(axis=0), x[:400].std(axis=0)
    layout = FeatureLayout(
        names, (), {}, None, None, tuple(map(float, mean)), tuple(map(float, std))
    )
    split = TrainData(
        "binary",
        2,
        Encoded(x[:400], None, None),
        y[:400],
        Encoded(x[400:], None, None),
        y[400:],
        ("0", "1"),
    )
    spec = TrainSpec.model_validate(
        {
            "max_epochs": 3,
            "model": {"hidden": [32]},
            "adversarial": ADVERSARIAL,
            "early_stopping": {"patience": 99},
        }
    )
    saved: dict[int, Any] = {}

    def net() -> MlcycleNet:
        torch.manual_seed(spec.seed)
        return build_model(spec.model, layout, "binary", 2)

    def keep(report: EpochReport) -> None:
        saved[report.epoch] = copy.deepcopy(report.checkpoint)

    whole = fit(spec, net(), split, device=torch.device("cpu"), on_epoch=keep).model
    resumed = fit(spec, net(), split, device=torch.device("cpu"), resume=saved[0]).model
    plain = fit(spec.model_copy(update={"adversarial": AdversarialSpec()}), net(), split,
                device=torch.device("cpu")).model  # fmt: skip
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert any(not torch.equal(v, plain.state_dict()[k]) for k, v in whole.state_dict().items())


# -- bad input that needs no model -------------------------------------------------------


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Project]:
    with Project.init(tmp_path / "p", name="p") as project:
        yield project


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": (0.1, 0.0)}, r"eps: 0\.0 must be > 0"),
        ({"eps": -0.5}, r"eps: -0\.5 must be > 0"),
        ({"eps": ()}, r"eps: no value given"),
        ({"attacks": ("pgd", "cw")}, r"attacks: 'cw' is not one of fgsm, pgd"),
        ({"steps": 0}, r"steps: 0 must be an integer >= 1"),
        ({"step_size": -1.0}, r"step_size: -1\.0 must be > 0"),
        ({"rows": 0}, r"rows: 0 must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    empty: Project, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        robustness_audit(empty, "nosuch@1", **kwargs)


@pytest.mark.parametrize(
    ("adversarial", "message"),
    [
        ({"attack": "pgd", "eps": 0}, r"train\.adversarial\.eps: 0 is not > 0"),
        ({"attack": "pgd", "ratio": 0}, r"train\.adversarial\.ratio: 0 is not > 0"),
        ({"attack": "pgd", "ratio": 1.5}, r"train\.adversarial\.ratio: 1\.5 is not <= 1"),
        ({"attack": "pgd", "steps": 0}, r"train\.adversarial\.steps: 0 is not >= 1"),
        ({"attack": "cw"}, r"train\.adversarial\.attack: 'cw' is not one of"),
    ],
)
def test_the_adversarial_training_spec_is_validated(
    adversarial: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec({"train": {"adversarial": adversarial}})
    assert parse_spec({}).train.adversarial.attack is None  # off unless asked


# -- the audit of registered versions ----------------------------------------------------

EPOCHS = {"max_epochs": 15, "evaluate.bootstrap": 20}
ADVERSARIAL = {"attack": "pgd", "eps": 0.25, "steps": 3, "ratio": 0.5}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with Project.init(tmp_path_factory.mktemp("robust"), name="robust") as project:
        plain = train(project, data="sklearn:breast_cancer", overrides=EPOCHS, quiet=True)
        register(project, plain.run_id, "cancer")
        hardened = train(
            project,
            data="breast_cancer",
            overrides={**EPOCHS, "train.adversarial": ADVERSARIAL},
            quiet=True,
        )
        register(project, hardened.run_id, "cancer")
        digits = train(project, data="sklearn:digits", overrides={"max_epochs": 8}, quiet=True)
        register(project, digits.run_id, "digits")
        sugar = train(project, data="sklearn:diabetes", overrides={"max_epochs": 2}, quiet=True)
        register(project, sugar.run_id, "sugar")
        yield project


@pytest.mark.slow
def test_accuracy_under_attack_is_below_clean_and_falls_as_eps_grows(project: Project) -> None:
    audit = robustness_audit(project, "cancer@1", eps=(0.05, 0.25, 0.5), steps=5)
    version = project.store.registry.get("cancer@1")
    # the torch graph rebuilt from the version answers as the run's evaluation did
    assert audit.clean_accuracy == pytest.approx(version.metrics["test"]["accuracy"], abs=1e-12)
    for attack in ("fgsm", "pgd"):
        accuracies = [audit.accuracy(attack, e) for e in (0.05, 0.25, 0.5)]
        assert all(a <= audit.clean_accuracy for a in accuracies)
        assert accuracies == sorted(accuracies, reverse=True)
        assert accuracies[-1] < audit.clean_accuracy - 0.2
    stored = json.loads(json.dumps(audit.to_dict()))  # plain JSON
    point = stored["attacks"]["pgd"][eps_key(0.25)]
    assert point["accuracy"] == audit.accuracy("pgd", 0.25)
    assert point["accuracy_drop"] == pytest.approx(stored["clean"]["accuracy"] - point["accuracy"])
    # the detector's false alarms on clean rows, and more alarms once the attack is large
    assert stored["clean"]["ood_flagged"] < 0.1
    assert point["ood_flagged"] is not None
    assert stored["attacks"]["pgd"][eps_key(0.5)]["ood_flagged"] > stored["clean"]["ood_flagged"]
    assert stored["perturbed"][:2] == ["mean_radius", "mean_texture"]
    assert stored["frozen"] == []
    (html,) = audit.html_sections()
    assert "<h2>Robustness</h2>" in html and "Accuracy under attack" in html


@pytest.mark.slow
def test_adversarial_training_raises_pgd_accuracy_at_its_eps(project: Project) -> None:
    hardened = project.store.registry.get("cancer@2")
    params = project.runs.get(hardened.run_id or "").params
    assert params["train"]["adversarial"] == ADVERSARIAL  # the run records how it was trained
    plain = robustness_audit(project, "cancer@1", eps=0.25, attacks="pgd", steps=5)
    robust = robustness_audit(project, "cancer@2", eps=0.25, attacks="pgd", steps=5)
    assert robust.accuracy("pgd", 0.25) > plain.accuracy("pgd", 0.25) + 0.05


@pytest.mark.slow
def test_attacked_rows_are_raw_columns_a_seed_reproduces(project: Project) -> None:
    first = attack_rows(project, "digits@1", "pgd", 0.1, steps=3, seed=1, rows=40)
    again = attack_rows(project, "digits@1", "pgd", 0.1, steps=3, seed=1, rows=40)
    other = attack_rows(project, "digits@1", "pgd", 0.1, steps=3, seed=2, rows=40)
    assert first.equals(again)
    assert not first.equals(other)
    clean = project.datasets.load_split("digits@1")["test"].slice(0, 40)
    assert first.column("target").equals(clean.column("target"))
    moved = np.stack(first.column("image").to_pylist())
    pixels = np.stack(clean.column("image").to_pylist())
    assert 0 < np.abs(moved - pixels).max() <= 0.1 * 16 + 1e-5
    assert moved.min() >= 0 and moved.max() <= 16
    audit = robustness_audit(project, "digits@1", eps=0.1, steps=3, rows=40, seed=1)
    assert audit.to_dict()["perturbed"] == ["image"]
    assert audit.accuracy("pgd", 0.1) < audit.clean_accuracy


@pytest.mark.slow
def test_versions_that_cannot_be_attacked_are_refused_in_one_line(project: Project) -> None:
    with pytest.raises(SpecError, match=r"sugar@1 is a regression model; accuracy under attack"):
        robustness_audit(project, "sugar@1")
    parent = project.store.registry.get("cancer@1")
    files = {p: project.artifacts.read_bytes(s) for p, s in parent.files.items()}
    weightless = add_version(  # as a quantised variant is: ONNX only, no PyTorch weights
        project,
        "cancer",
        VersionDraft(
            task=parent.task,
            onnx=files["model.onnx"],
            signature=parent.signature,
            metrics=parent.metrics,
            lineage={
                **parent.lineage,
                "derived_from": {"model": "cancer", "version": 1, "method": "quantize"},
            },
            dataset={"ref": parent.lineage["dataset"]},
            files={"ood.json": files["ood.json"]},
        ),
        actor="test",
    )
    with pytest.raises(ConflictError, match=r"has no PyTorch weights.*derived from \(cancer@1\)"):
        robustness_audit(project, weightless.ref)


@pytest.mark.slow
def test_mlcycle_audit_stores_the_robustness_figures_the_gate_reads(project: Project) -> None:
    from mlcycle.audit import audit

    result = audit(
        project,
        "cancer@1",
        kinds=["robustness"],
        options={"robustness": {"eps": [0.25], "attacks": ["pgd"], "steps": 3}},
    )
    document = result.parts["robustness"]
    accuracy = document["attacks"]["pgd"]["0.25"]["accuracy"]
    assert result.figures["robustness.pgd@0.25"] == {"accuracy": accuracy}
    assert result.figures["robustness.clean"] == {"accuracy": document["clean"]["accuracy"]}
    drop = result.figures["robustness.pgd@0.25.drop"]["drop"]
    assert drop == pytest.approx(document["clean"]["accuracy"] - accuracy)
    assert "robustness.pgd@0.25.ood_flagged" in result.figures
    card = project.artifacts.read_bytes(project.store.registry.get("cancer@1").files["card.md"])
    assert "Robustness" in card.decode() and "PGD" in card.decode()
    with pytest.raises(SpecError, match="robustness audit option 'epsilon' is not one of"):
        audit(project, "cancer@1", kinds=["robustness"], options={"robustness": {"epsilon": 1}})
