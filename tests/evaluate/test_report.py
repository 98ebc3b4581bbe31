"""The HTML report: self-contained, plotly.js inlined once, escaped, complete, atomic."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

from mlcycle.evaluate import (
    choose_threshold,
    classification_metrics,
    headline_with_ci,
    metrics_by_slice,
    regression_metrics,
    render_report,
)
from tests.evaluate.conftest import Classified, Regressed
from tests.evaluate.html_tables import section_tables

PLOTLY_JS = get_plotlyjs()
SIGNATURE = PLOTLY_JS[:200]  # the bundle's banner: "/**\n* plotly.js v4.1.1\n* Copyright ..."
N_BOOT = 200


class _Resources(HTMLParser):
    """Every attribute that would make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[tuple[str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in {"src", "href", "srcset", "data"} and value:
                self.fetches.append((tag, value))
        if tag == "link":
            self.fetches.append((tag, str(dict(attrs))))


def _check_self_contained(page: str) -> None:
    assert page.count(SIGNATURE) == 1, "plotly.js must be inlined exactly once"
    assert page.count(PLOTLY_JS) == 1
    parser = _Resources()
    parser.feed(page)
    assert parser.fetches == [], parser.fetches
    # plotly.js itself holds attribution links as string literals (never fetched);
    # everything else on the page must hold no URL at all.
    rest = page.replace(PLOTLY_JS, "")
    assert "http://" not in rest and "https://" not in rest
    assert 'src="http' not in rest and 'href="http' not in rest
    assert "cdn" not in rest.lower()


def _check_headline(page: str, headline: dict[str, dict[str, Any]]) -> None:
    for result in headline.values():
        if result["value"] is not None:
            assert f"{result['value']:.4f}" in page
            assert f"[{result['low']:.4f}, {result['high']:.4f}]" in page


def _render(path: Path, **kwargs: Any) -> str:
    out = render_report(path, n_boot=N_BOOT, **kwargs)
    assert out == path and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left"
    return path.read_text(encoding="utf-8")


def test_binary_report(
    tmp_path: Path, cancer: Classified, cancer_epochs: dict[str, list[float]]
) -> None:
    threshold, _ = choose_threshold(cancer.y, cancer.proba[:, 1], "f1")
    metrics = classification_metrics(cancer.y, cancer.proba, cancer.classes, threshold=threshold)
    page = _render(
        tmp_path / "binary.html",
        title="Breast cancer <logreg>",
        task="binary",
        classes=cancer.classes,
        metrics=metrics,
        curves=cancer_epochs,
        y_true=cancer.y,
        proba_or_pred=cancer.proba,
        summary={"run": "r-42", "dataset": "breast_cancer@1", "params": {"C": 1.0}},
    )
    _check_self_contained(page)
    _check_headline(
        page,
        headline_with_ci(
            "binary", cancer.y, cancer.proba, cancer.classes, n_boot=N_BOOT, threshold=threshold
        ),
    )
    for text in [
        "malignant",
        "benign",
        "Breast cancer &lt;logreg&gt;",
        "r-42",
        "breast_cancer@1",
        "Learning curves",
        "Confusion matrix",
        "ROC and precision-recall",
        "Calibration",
        "Per class",
        '"name":"train"',  # learning curves: train and validation traces
        '"name":"val"',
        f"{metrics['log_loss']:.4f}",
        f"{metrics['ece']:.4f}",
    ]:
        assert text in page, text
    assert "<logreg>" not in page
    assert "Predicted vs actual" not in page


def test_multiclass_report_with_slices(tmp_path: Path, digits: Classified) -> None:
    metrics = classification_metrics(digits.y, digits.proba, digits.classes)
    parity = np.where(digits.y % 2 == 0, "even", "odd")
    slices = metrics_by_slice(digits.y, digits.proba, parity, "multiclass", digits.classes)
    page = _render(
        tmp_path / "multi.html",
        title="Digits",
        task="multiclass",
        classes=digits.classes,
        metrics=metrics,
        curves={},
        y_true=digits.y,
        proba_or_pred=digits.proba,
        summary={},
        slices={"parity": slices},
    )
    _check_self_contained(page)
    _check_headline(
        page, headline_with_ci("multiclass", digits.y, digits.proba, digits.classes, n_boot=N_BOOT)
    )
    assert "No per-epoch curves were recorded" in page
    [table] = section_tables(page, "By slice")
    assert table[0] == [
        "parity",
        "n",
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "roc_auc",
        "note",
    ]
    for row in table[1:]:
        stats = slices[row[0]]
        assert row[1:6] == [
            str(stats["n"]),
            *(f"{stats[m]:.4f}" for m in ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc")),
        ]
    assert [row[0] for row in table[1:]] == ["even", "odd"]
    # One ROC curve per class (one-vs-rest), named with its AUC.
    for name in digits.classes:
        auc = metrics["per_class"][name]["roc_auc"]
        assert f"{name} (AUC {auc:.3f})" in page
        assert f"<td>{name}</td>" in page  # per-class table row


def test_regression_report(tmp_path: Path, diabetes: Regressed) -> None:
    metrics = regression_metrics(diabetes.y, diabetes.pred)
    page = _render(
        tmp_path / "reports" / "regression.html",
        title="Diabetes",
        task="regression",
        classes=None,
        metrics=metrics,
        curves={"train_mse": [5000.0, 3200.0, 2900.0], "val_mse": [5100.0, 3500.0, float("nan")]},
        y_true=diabetes.y,
        proba_or_pred=diabetes.pred,
        summary={"run": "r-7"},
    )
    _check_self_contained(page)
    _check_headline(page, headline_with_ci("regression", diabetes.y, diabetes.pred, n_boot=N_BOOT))
    assert "Predicted vs actual" in page and "Residuals" in page
    assert f"{metrics['mape']:.4f}" in page
    assert "Confusion matrix" not in page


def test_caller_text_is_escaped_everywhere(tmp_path: Path, cancer: Classified) -> None:
    classes = ["<script>alert(1)</script>", 'a "b" & c']
    metrics = classification_metrics(cancer.y, cancer.proba, classes)
    page = _render(
        tmp_path / "x.html",
        title="<img src=x onerror=alert(1)>",
        task="binary",
        classes=classes,
        metrics=metrics,
        curves={"train_<b>loss</b>": [1.0, 0.5]},
        y_true=cancer.y,
        proba_or_pred=cancer.proba,
        summary={"<k>": "</td><script>"},
    )
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert "</td><script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &quot;b&quot; &amp; c" in page
    assert len(re.findall(r"<script\b", page)) == page.count("</script>")


def test_same_inputs_give_the_same_bytes_and_overwrite_in_place(
    tmp_path: Path, iris: Classified
) -> None:
    kwargs: dict[str, Any] = {
        "title": "Iris",
        "task": "multiclass",
        "classes": iris.classes,
        "metrics": classification_metrics(iris.y, iris.proba, iris.classes),
        "curves": {"loss": [0.9, 0.4]},
        "y_true": iris.y,
        "proba_or_pred": iris.proba,
        "summary": {"run": "r-1"},
    }
    path = tmp_path / "iris.html"
    first = _render(path, **kwargs)
    assert _render(path, **kwargs) == first


def test_metrics_must_fit_the_data(tmp_path: Path, iris: Classified, cancer: Classified) -> None:
    with pytest.raises(ValueError, match="confusion_matrix"):
        render_report(
            tmp_path / "bad.html",
            title="t",
            task="multiclass",
            classes=iris.classes,
            metrics=classification_metrics(cancer.y, cancer.proba, cancer.classes),
            curves={},
            y_true=iris.y,
            proba_or_pred=iris.proba,
            summary={},
            n_boot=10,
        )
    assert not (tmp_path / "bad.html").exists()


def test_slices_must_be_keyed_by_column(tmp_path: Path, iris: Classified) -> None:
    flat = metrics_by_slice(iris.y, iris.proba, iris.y % 2, "multiclass", iris.classes)
    with pytest.raises(ValueError, match=r"slices: expected \{column: metrics_by_slice"):
        render_report(
            tmp_path / "bad.html",
            title="t",
            task="multiclass",
            classes=iris.classes,
            metrics=classification_metrics(iris.y, iris.proba, iris.classes),
            curves={},
            y_true=iris.y,
            proba_or_pred=iris.proba,
            summary={},
            slices=flat,
            n_boot=N_BOOT,
        )


def test_many_classes_are_reported_without_a_confusion_matrix(tmp_path: Path) -> None:
    k = 120
    rng = np.random.default_rng(0)
    y = np.arange(2 * k) % k
    proba = rng.dirichlet(np.full(k, 0.2), size=y.size)
    classes = [f"c{i}" for i in range(k)]
    page = _render(
        tmp_path / "many.html",
        title="many",
        task="multiclass",
        classes=classes,
        metrics=classification_metrics(y, proba, classes),
        curves={},
        y_true=y,
        proba_or_pred=proba,
        summary={},
    )
    assert "120 classes: no confusion matrix is recorded above 100" in page
    [per_class] = section_tables(page, "Per class")
    assert len(per_class) == 1 + k
