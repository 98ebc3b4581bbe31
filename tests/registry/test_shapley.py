"""Baseline Shapley values on the ONNX graph: exact sums, known truths, image patches."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle import Project
from mlcycle.errors import DataError
from mlcycle.registry import load
from mlcycle.registry._shapley import MAX_PATCHES, baseline_row, shapley_values
from mlcycle.train import train
from mlcycle.workflow import register

pytestmark = pytest.mark.slow


def _mixed(rows: int = 400) -> pd.DataFrame:
    """y depends on x strongly, on city a little, on noise not at all."""
    rng = np.random.default_rng(5)
    x, noise = rng.normal(size=rows), rng.normal(size=rows)
    city = rng.choice(["lyon", "nice", "paris"], size=rows)
    y = np.where(2 * x + (city == "nice") * 0.5 > 0, "yes", "no")
    return pd.DataFrame({"x": x, "noise": noise, "city": city, "y": y})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("shapley")
    _mixed().to_csv(root / "mixed.csv", index=False)
    with Project.init(root, name="shapley") as project:
        project.datasets.add(str(root / "mixed.csv"), target="y")
        run = train(project, data="mixed", overrides={"max_epochs": 15}, quiet=True)
        register(project, run.run_id, "mixed")
        cnn = train(
            project,
            data="sklearn:digits",
            model="cnn",
            overrides={"max_epochs": 2, "model.channels": [8, 16]},
            quiet=True,
        )
        register(project, cnn.run_id, "digits")
        yield project


def _ood(project: Project, ref: str) -> dict[str, Any]:
    version = project.store.registry.get(ref)
    return dict(json.loads(project.artifacts.read_bytes(version.files["ood.json"])))


def _exact(predictor: Any, feeds: dict[str, Any], base: dict[str, Any], label: str) -> np.ndarray:
    """Shapley values by their definition: every coalition of the (few) features."""
    names = list(feeds)
    k = predictor.classes.index(label)

    def v(coalition: set[str]) -> float:
        row = {n: (feeds[n] if n in coalition else base[n]) for n in names}
        return float(predictor.run(row).probabilities[0, k])

    out = np.zeros(len(names))
    for j, name in enumerate(names):
        others = [n for n in names if n != name]
        for size in range(len(others) + 1):
            for s in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(len(names) - size - 1)
                weight /= math.factorial(len(names))
                out[j] += weight * (v({*s, name}) - v(set(s)))
    return out


def test_values_sum_to_the_change_from_the_baseline_and_match_the_definition(
    project: Project,
) -> None:
    predictor = load("mixed@1", project=project)
    rows = predictor.feeds(_mixed(6).drop(columns="y"))
    base = baseline_row(predictor, _ood(project, "mixed@1"))
    found = shapley_values(predictor, rows, base, permutations=64, seed=1)

    assert found.features == ["x", "noise", "city"]
    direct = predictor.run(dict(rows)).probabilities
    for i in range(6):
        assert found.values[i].sum() == pytest.approx(found.output[i] - found.base[i], abs=1e-6)
        k = predictor.classes.index(found.target[i])
        assert found.output[i] == pytest.approx(direct[i, k], abs=1e-6)
        one = {n: a[i : i + 1] for n, a in rows.items()}
        exact = _exact(predictor, one, base, found.target[i])
        # three features: 64 antithetic permutations see every order many times over
        assert np.allclose(found.values[i], exact, atol=0.02), (found.values[i], exact)
    # the truth: x moves the answer most, noise least
    mean_abs = np.abs(found.values).mean(axis=0)
    assert mean_abs[0] > mean_abs[2] > mean_abs[1] or mean_abs[0] > 5 * mean_abs[1]


def test_the_baseline_is_the_training_middle(project: Project) -> None:
    predictor = load("mixed@1", project=project)
    ood = _ood(project, "mixed@1")
    base = baseline_row(predictor, ood)
    center = {e["name"]: e["center"] for e in ood["numeric"]}
    assert float(base["x"].ravel()[0]) == pytest.approx(center["x"], abs=1e-6)
    counts = _mixed().city.value_counts()
    assert str(base["city"].ravel()[0]) == counts.idxmax()


def test_an_image_is_explained_by_patches_that_sum_to_the_change(project: Project) -> None:
    predictor = load("digits@1", project=project)
    ood = _ood(project, "digits@1")
    from sklearn.datasets import load_digits

    images = load_digits().images[:2].astype(np.float32)
    feeds = predictor.feeds({predictor.input_names[0]: images})
    found = shapley_values(predictor, feeds, baseline_row(predictor, ood), permutations=8)
    assert 1 < len(found.features) <= MAX_PATCHES
    assert all(f.startswith(predictor.input_names[0] + "[") for f in found.features)
    assert np.allclose(found.values.sum(axis=1), found.output - found.base, atol=1e-5)
    again = shapley_values(predictor, feeds, baseline_row(predictor, ood), permutations=8)
    assert np.array_equal(found.values, again.values)  # seeded


def test_bad_requests_are_refused_in_one_line(project: Project) -> None:
    predictor = load("mixed@1", project=project)
    rows = predictor.feeds(_mixed(2).drop(columns="y"))
    base = baseline_row(predictor, _ood(project, "mixed@1"))
    with pytest.raises(DataError, match="'maybe' is not one of the classes"):
        shapley_values(predictor, rows, base, target="maybe")
    with pytest.raises(DataError, match="permutations: 1 is below 2"):
        shapley_values(predictor, rows, base, permutations=1)
    with pytest.raises(DataError, match="over the 200,000 allowed"):
        shapley_values(predictor, rows, base, permutations=40_000)
