"""SHAP's permutation explainer on the ONNX graph of a compressed variant (no PyTorch weights)."""

from __future__ import annotations

import numpy as np
import pytest

from mlcycle import Project
from mlcycle.audit import explain, html_sections
from mlcycle.audit._agnostic import ADDITIVITY_ATOL
from mlcycle.audit._importance import load_version
from mlcycle.compress import compress
from mlcycle.errors import SpecError
from mlcycle.registry import Predictor
from tests.compress._variants import register_by_hand

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def variant(explained: Project) -> str:
    """cancer@1 quantized to static int8, registered whatever its verdict: no torch weights."""
    result = compress(explained, "cancer@1", methods=["static-int8"], register=False, max_drop=100)
    record = register_by_hand(explained, result)
    assert "weights.safetensors" not in record.files
    return record.ref


def test_attributions_sum_to_f_minus_its_expectation(explained: Project, variant: str) -> None:
    result = explain(explained, variant, list(range(4)), method="shap", steps=4)
    assert result.method == "shap" and result.reference == "expectation"
    assert result.background == 100 and result.columns[0] == "mean_radius"
    data = load_version(explained, variant)
    predictor = Predictor(data.files["model.onnx"], data.signature)
    proba = predictor.predict(data.splits["test"].take(list(range(4)))).probabilities
    assert proba is not None
    classes = list(data.signature["classes"])
    for i, r in enumerate(result.rows):
        assert abs(sum(r.attributions.values()) - (r.output - r.reference)) <= ADDITIVITY_ATOL
        assert abs(r.error) <= ADDITIVITY_ATOL
        assert r.output == pytest.approx(float(proba[i, classes.index(r.target)]), abs=1e-6)
        assert r.target == classes[int(proba[i].argmax())]
    # E[f] is one number per class: every row explaining the same class shares it
    by_class: dict[str, set[float]] = {}
    for r in result.rows:
        by_class.setdefault(r.target, set()).add(round(r.reference, 12))
    assert all(len(v) == 1 for v in by_class.values())


def test_a_baseline_row_makes_f_of_it_the_reference_and_equal_columns_null(
    explained: Project, variant: str
) -> None:
    data = load_version(explained, variant)
    rows = data.splits["test"].slice(0, 3).to_pylist()
    base = {k: v for k, v in rows[0].items() if k in result_columns(data)}
    changed = dict(base, mean_radius=base["mean_radius"] + 3.0)  # one column differs
    result = explain(explained, variant, [changed], method="shap", baseline=base, steps=4)
    (r,) = result.rows
    f_base = Predictor(data.files["model.onnx"], data.signature).predict([base]).probabilities
    assert f_base is not None
    classes = list(data.signature["classes"])
    assert r.reference == pytest.approx(float(f_base[0, classes.index(r.target)]), abs=1e-6)
    # only mean_radius moved: Shapley's dummy axiom gives every other column exactly 0
    assert all(v == 0.0 for c, v in r.attributions.items() if c != "mean_radius")
    assert r.attributions["mean_radius"] == pytest.approx(r.output - r.reference, abs=1e-6)


def result_columns(data: object) -> set[str]:
    return {spec["name"] for spec in data.signature["inputs"]}  # type: ignore[attr-defined]


def test_ig_on_the_variant_names_the_method_that_works(explained: Project, variant: str) -> None:
    with pytest.raises(SpecError) as caught:
        explain(explained, variant, [0], method="ig")
    message = str(caught.value)
    assert message.startswith(f"method: 'ig' needs PyTorch weights and {variant} has none")
    assert "method 'shap'" in message and "\n" not in message


def test_shap_on_images_gives_a_pixel_heat_map(explained: Project) -> None:
    result = explain(explained, "digits@1", [0], method="shap", steps=2)
    (r,) = result.rows
    assert r.heatmap is not None and np.array(r.heatmap).shape == (8, 8)
    assert np.array(r.heatmap).sum() == pytest.approx(r.attributions["image"], abs=1e-9)
    assert abs(r.error) <= ADDITIVITY_ATOL
    assert '"type":"heatmap"' in "".join(html_sections(result))


def test_shap_and_ig_agree_on_what_matters_for_the_mixed_model(explained: Project) -> None:
    """Two methods, one model: where the city flips the answer both put it first."""
    data = load_version(explained, "mixed@1")
    cities = data.splits["test"].column("city").to_pylist()
    nice = [i for i, c in enumerate(cities) if c == "nice"][:6]
    shap = explain(explained, "mixed@1", nice, method="shap")
    ig = explain(explained, "mixed@1", nice)
    first = [max(r.attributions, key=lambda c: abs(r.attributions[c])) for r in shap.rows]
    assert first.count("city") >= 4
    agree = [
        np.sign(a.attributions["city"]) == np.sign(b.attributions["city"])
        for a, b in zip(shap.rows, ig.rows, strict=True)
    ]
    assert sum(agree) >= 5
