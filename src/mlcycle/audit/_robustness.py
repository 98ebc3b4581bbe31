"""Robustness audit: accuracy under FGSM and PGD attacks, and whether the OOD detector sees them.

The attacks (:mod:`mlcycle.train._adversarial`, L-infinity) run on the torch
graph of a registered version, rebuilt from its ``model.json`` and
``weights.safetensors``, against the test split of the dataset version it
was trained on. ``eps`` is in units of each numeric column's training
standard deviation (the one the network standardises with) and, for an
image, of the training pixel range (max - min; pixels stay inside it);
categorical and boolean inputs are discrete and never moved. The network
takes raw columns, so an attacked row is a row of raw columns again: the
version's out-of-distribution detector (``ood.json``) scores it exactly as a
server would score the request, and its catch rate stands beside each
accuracy.

Accuracy needs a classifier: a regression version is refused (its error
under attack is not reported). A version without PyTorch weights (a
quantised or otherwise compressed variant) is refused too: gradient attacks
need the gradient, and no model-agnostic attack is offered; audit the version
it was derived from.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mlcycle._html import esc, fmt, section, table
from mlcycle.errors import ConflictError, DataError, SpecError
from mlcycle.registry import OODDetector
from mlcycle.train import (
    ATTACKS,
    AttackBudget,
    FeatureLayout,
    MlcycleNet,
    encode,
    encode_target,
    fgsm,
    network_from_files,
    pgd,
)

if TYPE_CHECKING:
    from mlcycle.evaluate._figures import Figures
    from mlcycle.project import Project
    from mlcycle.store import ModelVersionRecord

__all__ = ["AttackPoint", "RobustnessAudit", "attack_rows", "eps_key", "robustness_audit"]

DEFAULT_EPS = (0.05, 0.1, 0.25, 0.5)
BATCH = 512  # rows attacked at once; fixed, so that a seed draws the same starts every time
UNITS = {
    "numeric": "training standard deviation of the column",
    "image": "training pixel range (max - min); attacked pixels clipped to it",
}


def eps_key(eps: float) -> str:
    """How an ``eps`` is written as a key of :meth:`RobustnessAudit.to_dict` (``0.1`` → ``"0.1"``)."""
    return repr(float(eps))


@dataclass(frozen=True)
class AttackPoint:
    """One attack at one ``eps``.

    Attributes:
        accuracy: accuracy on the attacked rows.
        ood_flagged: share of attacked rows the OOD detector flags (None: no detector).
        ood_out_of_range: share flagged because a value left the training range.
    """

    attack: str
    eps: float
    accuracy: float
    ood_flagged: float | None
    ood_out_of_range: float | None


@dataclass(frozen=True)
class RobustnessAudit:
    """Accuracy under attack of one version, and the OOD detector's catch rate beside it.

    :meth:`to_dict` is what is stored with the version and what the loop's
    gate reads; its keys are stable::

        {"audit": "robustness", "model": "cancer@1", "dataset": "cancer@1",
         "split": "test", "rows": 114, "norm": "linf", "units": {...},
         "perturbed": [...], "frozen": [...], "seed": 0, "steps": 10,
         "step_size": null,               # null: 2.5 * eps / steps at each eps
         "clean": {"accuracy": ..., "ood_flagged": ..., "ood_out_of_range": ...},
         "attacks": {"pgd": {"0.1": {"eps": 0.1, "accuracy": ..., "accuracy_drop": ...,
                                     "ood_flagged": ..., "ood_out_of_range": ...}, ...},
                     "fgsm": {...}},
         "ood": {"threshold": ..., "quantile": ...} or null,
         "seconds": ...}

    ``attacks[ATTACK][eps_key(eps)]["accuracy"]`` is PGD's accuracy at an
    ``eps`` (:func:`eps_key`; :meth:`accuracy` reads it from the object).
    ``ood_*`` are shares of rows, null when the version has no detector.
    """

    model: str
    dataset: str
    rows: int
    seed: int
    steps: int
    step_size: float | None
    perturbed: tuple[str, ...]
    frozen: tuple[str, ...]
    clean_accuracy: float
    clean_ood_flagged: float | None
    clean_ood_out_of_range: float | None
    points: tuple[AttackPoint, ...]
    ood: dict[str, float] | None = None
    seconds: float = 0.0
    units: dict[str, str] = field(default_factory=lambda: dict(UNITS))

    def accuracy(self, attack: str, eps: float) -> float:
        """Accuracy under ``attack`` at ``eps``.

        Raises:
            KeyError: the audit did not run that attack at that ``eps``.
        """
        for point in self.points:
            if point.attack == attack and eps_key(point.eps) == eps_key(eps):
                return point.accuracy
        raise KeyError(f"no {attack} at eps {eps} in this audit")

    def to_dict(self) -> dict[str, Any]:
        attacks: dict[str, dict[str, Any]] = {}
        for p in self.points:
            attacks.setdefault(p.attack, {})[eps_key(p.eps)] = {
                "eps": p.eps,
                "accuracy": p.accuracy,
                "accuracy_drop": self.clean_accuracy - p.accuracy,
                "ood_flagged": p.ood_flagged,
                "ood_out_of_range": p.ood_out_of_range,
            }
        return {
            "audit": "robustness",
            "model": self.model,
            "dataset": self.dataset,
            "split": "test",
            "rows": self.rows,
            "norm": "linf",
            "units": dict(self.units),
            "perturbed": list(self.perturbed),
            "frozen": list(self.frozen),
            "seed": self.seed,
            "steps": self.steps,
            "step_size": self.step_size,
            "clean": {
                "accuracy": self.clean_accuracy,
                "ood_flagged": self.clean_ood_flagged,
                "ood_out_of_range": self.clean_ood_out_of_range,
            },
            "attacks": attacks,
            "ood": self.ood,
            "seconds": self.seconds,
        }

    def html_sections(self, figures: Figures | None = None) -> list[str]:
        """The report's Robustness section: accuracy and OOD catch rate against ``eps``.

        Pass the page's :class:`~mlcycle.evaluate._figures.Figures` so that
        plotly.js is inlined once per page.
        """
        from mlcycle.evaluate._figures import Figures

        figs = figures or Figures()
        go = figs.go
        fig = figs.make_subplots(
            rows=1,
            cols=2,
            subplot_titles=["Accuracy under attack", "OOD detector's catch rate"],
        )
        colours = {"fgsm": "#2f80ed", "pgd": "#d64545"}
        for attack in dict.fromkeys(p.attack for p in self.points):
            points = sorted((p for p in self.points if p.attack == attack), key=lambda p: p.eps)
            xs = [0.0, *(p.eps for p in points)]
            colour = colours.get(attack, "#52606d")
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[self.clean_accuracy, *(p.accuracy for p in points)],
                    mode="lines+markers",
                    name=esc(attack.upper()),
                    line={"color": colour},
                ),
                row=1,
                col=1,
            )
            if self.clean_ood_flagged is not None:
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=[self.clean_ood_flagged, *(p.ood_flagged for p in points)],
                        mode="lines+markers",
                        name=esc(f"{attack.upper()} flagged"),
                        line={"color": colour, "dash": "dot"},
                    ),
                    row=1,
                    col=2,
                )
        fig.add_hline(
            y=self.clean_accuracy,
            line_dash="dash",
            line_color="#52606d",
            annotation_text="clean accuracy",
            row=1,
            col=1,
        )
        fig.update_xaxes(title_text="eps (training std / pixel range)")
        fig.update_yaxes(range=[0, 1.02])
        rows = [["clean", "0", fmt(self.clean_accuracy), fmt(0.0)]]
        rows[0] += [fmt(self.clean_ood_flagged), fmt(self.clean_ood_out_of_range)]
        for p in self.points:
            row = [p.attack.upper(), f"{p.eps:g}", fmt(p.accuracy)]
            row += [fmt(self.clean_accuracy - p.accuracy), fmt(p.ood_flagged)]
            rows.append([*row, fmt(p.ood_out_of_range)])
        step = "2.5·eps/steps" if self.step_size is None else f"{self.step_size:g}"
        note = (
            f'<p class="note">{esc(self.model)} on {self.rows} test rows of '
            f"{esc(self.dataset)}; L∞ attacks with eps in units of each numeric column's "
            "training standard deviation and of the training pixel range. PGD: "
            f"{self.steps} steps of {esc(step)} from a random start (seed {self.seed}). "
            f"Moved: {esc(_names(self.perturbed))}. Never moved (discrete): "
            f"{esc(_names(self.frozen))}.</p>"
        )
        if self.ood is None:
            note += '<p class="note">The version has no OOD detector: no catch rate.</p>'
        else:
            note += (
                '<p class="note">Flagged: the share of rows the version\'s OOD detector flags '
                f"(score above {self.ood['threshold']:.4g}, or a value outside the training "
                "range); on clean rows it is the false-alarm rate.</p>"
            )
        body = (
            figs.html(fig, height=400)
            + table(
                ["attack", "eps", "accuracy", "drop", "OOD flagged", "out of range"],
                rows,
            )
            + note
        )
        return [section("Robustness", body)]


def _names(columns: Sequence[str], shown: int = 6) -> str:
    if not columns:
        return "none"
    if len(columns) <= shown:
        return ", ".join(columns)
    return f"{len(columns)} columns ({', '.join(columns[:shown])}, ...)"


# -- checks -------------------------------------------------------------------------


def _check_eps(eps: float | Iterable[float]) -> tuple[float, ...]:
    values = (eps,) if isinstance(eps, int | float) else tuple(eps)
    if not values:
        raise SpecError("eps: no value given; pass one or more numbers > 0")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"eps: {value!r} is not a number; eps must be > 0")
        if not math.isfinite(value) or value <= 0:
            raise SpecError(
                f"eps: {value!r} must be > 0 (a finite radius, in training standard "
                "deviations or pixel ranges)"
            )
    return tuple(float(v) for v in values)


def _check_attacks(attacks: str | Iterable[str]) -> tuple[str, ...]:
    names = (attacks,) if isinstance(attacks, str) else tuple(attacks)
    if not names:
        raise SpecError(f"attacks: none given; choose from {', '.join(ATTACKS)}")
    for name in names:
        if name not in ATTACKS:
            raise SpecError(f"attacks: {name!r} is not one of {', '.join(ATTACKS)}")
    return tuple(dict.fromkeys(names))


def _check_options(steps: int, step_size: float | None, seed: int, rows: int | None) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SpecError(f"steps: {steps!r} must be an integer >= 1")
    if step_size is not None and (not math.isfinite(step_size) or step_size <= 0):
        raise SpecError(f"step_size: {step_size!r} must be > 0 (or None: 2.5 * eps / steps)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SpecError(f"seed: {seed!r} must be an integer >= 0")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise SpecError(f"rows: {rows!r} must be an integer >= 1 (or None: every test row)")


# -- the version's network and data --------------------------------------------------


@dataclass
class _Subject:
    version: ModelVersionRecord
    net: MlcycleNet
    layout: FeatureLayout
    test: pa.Table
    y: torch.Tensor
    budget: AttackBudget
    threshold: float | None
    ood: OODDetector | None


def _subject(project: Project, ref: str, rows: int | None) -> _Subject:
    version = project.store.registry.get(ref)
    if version.task == "regression":
        raise SpecError(
            f"robustness: {version.ref} is a regression model; accuracy under attack needs "
            "a classifier (binary or multiclass)"
        )
    if "lightgbm.txt" in version.files:
        raise ConflictError(
            f"robustness: {version.ref} is a gbm model (LightGBM trees); FGSM and PGD need a "
            "network's gradient and no model-agnostic attack is offered"
        )
    if "weights.safetensors" not in version.files or "model.json" not in version.files:
        parent = version.lineage.get("derived_from") or {}
        hint = f" ({parent['model']}@{parent['version']})" if "model" in parent else ""
        raise ConflictError(
            f"robustness: {version.ref} has no PyTorch weights (a compressed variant?); "
            "FGSM and PGD need the torch graph's gradient and no model-agnostic attack is "
            f"offered: audit the version it was derived from{hint}"
        )
    net, layout, _ = network_from_files(
        project.artifacts.read_bytes(version.files["model.json"]),
        project.artifacts.read_bytes(version.files["weights.safetensors"]),
        root=project.root,
    )
    net.eval().requires_grad_(False)  # gradients flow to the inputs only

    dataset = str(version.lineage["dataset"])
    splits = project.datasets.load_split(dataset)
    test = splits["test"] if rows is None else splits["test"].slice(0, rows)
    if test.num_rows == 0:
        raise DataError(f"robustness: dataset {dataset} has no test rows to attack")
    y = torch.from_numpy(encode_target(test, project.datasets.schema(dataset)))
    pixels = encode(splits["train"], layout).image if layout.image is not None else None
    budget = AttackBudget.of(layout, pixels)
    if not budget.movable:
        raise SpecError(
            f"robustness: {version.ref} takes only categorical or boolean inputs "
            f"({', '.join(layout.categorical + layout.booleans)}); an L∞ attack has nothing "
            "to move"
        )
    threshold = version.metrics.get("threshold")
    ood = None
    if "ood.json" in version.files:
        ood = OODDetector.from_dict(
            json.loads(project.artifacts.read_bytes(version.files["ood.json"]))
        )
    return _Subject(
        version, net, layout, test, y, budget, None if threshold is None else float(threshold), ood
    )


def _inputs(subject: _Subject) -> dict[str, torch.Tensor]:
    x = encode(subject.test, subject.layout)
    return {
        name: torch.from_numpy(value)
        for name in ("numeric", "categorical", "image")
        if (value := getattr(x, name)) is not None
    }


def _attack(
    subject: _Subject,
    inputs: dict[str, torch.Tensor],
    attack: str,
    eps: float,
    steps: int,
    step_size: float | None,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Every row attacked, ``BATCH`` rows at a time; PGD's starts drawn from one seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    n = len(subject.y)
    parts: list[dict[str, torch.Tensor]] = []
    for start in range(0, n, BATCH):
        batch = {k: v[start : start + BATCH] for k, v in inputs.items()}
        yb = subject.y[start : start + BATCH]
        if attack == "fgsm":
            parts.append(fgsm(subject.net, batch, yb, subject.budget, eps=eps))
        else:
            parts.append(
                pgd(
                    subject.net,
                    batch,
                    yb,
                    subject.budget,
                    eps=eps,
                    steps=steps,
                    step_size=step_size,
                    generator=generator,
                )
            )
    return {k: torch.cat([p[k] for p in parts]) for k in inputs}


@torch.no_grad()
def _predicted(subject: _Subject, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    proba = torch.cat(
        [
            subject.net.outputs(subject.net(**{k: v[s : s + BATCH] for k, v in inputs.items()}))
            for s in range(0, len(subject.y), BATCH)
        ]
    )
    if subject.threshold is not None and proba.shape[1] == 2:  # the version's decision threshold
        return (proba[:, 1] >= subject.threshold).long()
    return proba.argmax(dim=1)


def _columns(subject: _Subject, inputs: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The rows as raw columns by name, as a server would hand them to the OOD detector."""
    layout = subject.layout
    columns: dict[str, Any] = {}
    if "numeric" in inputs:
        numbers = inputs["numeric"].numpy().astype(np.float64)
        columns |= {name: numbers[:, j] for j, name in enumerate(layout.numeric)}
    for name in layout.categorical:
        columns[name] = pc.cast(subject.test.column(name), pa.string()).to_pylist()
    if layout.image is not None:
        columns[layout.image] = inputs["image"].numpy().astype(np.float64)
    return columns


def _ood(subject: _Subject, inputs: dict[str, torch.Tensor]) -> tuple[float | None, float | None]:
    if subject.ood is None:
        return None, None
    scores = subject.ood.score(_columns(subject, inputs))
    return scores.share(), float(scores.out_of_range.mean()) if len(scores) else 0.0


# -- the public entry points ---------------------------------------------------------


def attack_rows(
    project: Project,
    ref: str,
    attack: str = "pgd",
    eps: float = 0.1,
    *,
    steps: int = 10,
    step_size: float | None = None,
    seed: int = 0,
    rows: int | None = None,
) -> pa.Table:
    """The version's test rows after ``attack`` at ``eps``, as raw columns (what a server takes).

    Numeric and image columns hold the attacked values (numbers as float64,
    pixels as float32); the other columns are the test rows' own. The same
    arguments give the same rows; PGD's random start comes from ``seed``.

    Raises:
        SpecError: a bad ``eps``, ``attack`` or option; a regression version.
        ConflictError: the version has no PyTorch weights.
        NotFoundError: no such model or version.
    """
    (value,) = _check_eps(eps)
    (name,) = _check_attacks(attack)
    _check_options(steps, step_size, seed, rows)
    subject = _subject(project, ref, rows)
    moved = _attack(subject, _inputs(subject), name, value, steps, step_size, seed)
    out = subject.test
    layout = subject.layout
    if "numeric" in moved:
        numbers = moved["numeric"].numpy().astype(np.float64)
        for j, column in enumerate(layout.numeric):
            if column not in layout.booleans:
                out = out.set_column(
                    out.schema.get_field_index(column), column, pa.array(numbers[:, j])
                )
    if layout.image is not None:
        pixels = moved["image"].numpy().astype(np.float32)
        flat = pa.FixedSizeListArray.from_arrays(
            pa.array(pixels.reshape(-1)), int(np.prod(pixels.shape[1:]))
        )
        out = out.set_column(out.schema.get_field_index(layout.image), layout.image, flat)
    return out


def robustness_audit(
    project: Project,
    ref: str,
    *,
    eps: Sequence[float] | float = DEFAULT_EPS,
    attacks: Sequence[str] | str = ATTACKS,
    steps: int = 10,
    step_size: float | None = None,
    seed: int = 0,
    rows: int | None = None,
) -> RobustnessAudit:
    """Accuracy of version ``ref`` under FGSM and PGD at each ``eps``, beside its clean accuracy.

    ``eps`` is in units of each numeric column's training standard deviation
    and of the training pixel range; ``steps`` and ``step_size`` (same units;
    None: ``2.5 * eps / steps``) are PGD's, whose random start is drawn from
    ``seed``. ``rows`` limits the audit to the first rows of the test split.
    Every ``eps`` starts from the same seed, so a value's result does not
    depend on the others asked for.

    Raises:
        SpecError: an ``eps`` <= 0, an unknown attack, a bad option, a
            regression version, or one whose inputs are all categorical.
        ConflictError: the version has no PyTorch weights (a compressed variant).
        DataError: the dataset version has no test rows.
        NotFoundError: no such model or version.

    Example:
        >>> import tempfile, mlcycle
        >>> from mlcycle.train import train
        >>> from mlcycle.workflow import register
        >>> with mlcycle.Project.init(tempfile.mkdtemp(), name="demo") as project:
        ...     run = train(project, data="sklearn:iris", overrides={"max_epochs": 3})
        ...     _ = register(project, run.run_id, "iris")
        ...     audit = robustness_audit(project, "iris@1", eps=(0.1, 0.5), steps=3)
        >>> sorted(audit.to_dict()["attacks"]["pgd"])
        ['0.1', '0.5']
        >>> audit.accuracy("pgd", 0.5) <= audit.clean_accuracy
        True
    """
    values = _check_eps(eps)
    names = _check_attacks(attacks)
    _check_options(steps, step_size, seed, rows)
    started = time.perf_counter()
    subject = _subject(project, ref, rows)
    inputs = _inputs(subject)
    clean = float((_predicted(subject, inputs) == subject.y).double().mean())
    clean_flagged, clean_out = _ood(subject, inputs)
    points = []
    for name in names:
        for value in values:
            moved = _attack(subject, inputs, name, value, steps, step_size, seed)
            accuracy = float((_predicted(subject, moved) == subject.y).double().mean())
            flagged, out = _ood(subject, moved)
            points.append(AttackPoint(name, value, accuracy, flagged, out))
    layout = subject.layout
    moved_names = [c for c in layout.numeric if c not in layout.booleans]
    moved_names += [layout.image] if layout.image is not None else []
    ood = subject.ood
    return RobustnessAudit(
        model=subject.version.ref,
        dataset=str(subject.version.lineage["dataset"]),
        rows=len(subject.y),
        seed=seed,
        steps=steps,
        step_size=step_size,
        perturbed=tuple(moved_names),
        frozen=(*layout.booleans, *layout.categorical),
        clean_accuracy=clean,
        clean_ood_flagged=clean_flagged,
        clean_ood_out_of_range=clean_out,
        points=tuple(points),
        ood=None if ood is None else {"threshold": ood.threshold, "quantile": ood.quantile},
        seconds=time.perf_counter() - started,
    )
