"""Permutation importance on the ONNX graph: a planted column first, any metric, intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcycle import Project
from mlcycle.audit import html_sections, importance
from mlcycle.errors import SpecError

pytestmark = pytest.mark.slow  # the session's models train in about 20 s


def test_the_planted_column_ranks_first_and_noise_stays_near_zero(explained: Project) -> None:
    result = importance(explained, "planted@1", repeats=5, seed=0)
    assert result.metric == "accuracy" and result.higher_is_better
    assert set(result.ranking) == {"noise_a", "signal", "noise_b", "colour"}
    first = result.columns[0]
    assert first.column == "signal"
    assert first.low is not None and first.low > 0.2  # shuffling it costs a lot, surely
    for c in result.columns[1:]:
        assert c.importance < 0.05
        assert c.low is not None and c.high is not None and c.low <= c.importance <= c.high
        assert c.low < 0.02, c  # noise: the interval reaches (next to) zero
    assert result.rows == explained.datasets.load_split("planted@1")["test"].num_rows


def test_any_metric_of_the_table_in_its_direction(explained: Project) -> None:
    """log_loss is lower-is-better: shuffling the signal still shows a positive importance."""
    loss = importance(explained, "planted@1", metric="log_loss", repeats=2)
    auc = importance(explained, "planted@1", metric="roc_auc", repeats=2)
    assert not loss.higher_is_better and auc.higher_is_better
    assert loss.ranking[0] == auc.ranking[0] == "signal"
    assert loss.columns[0].importance > 0 and auc.columns[0].importance > 0


def test_the_same_seed_gives_the_same_result_and_json(explained: Project) -> None:
    a = importance(explained, "planted@1", repeats=2, seed=3, n_boot=200)
    b = importance(explained, "planted@1", repeats=2, seed=3, n_boot=200)
    assert a == b
    back = json.loads(json.dumps(a.to_dict()))
    assert back["kind"] == "permutation_importance" and back["columns"][0]["column"] == "signal"
    assert back["confidence"] == pytest.approx(0.95)


def test_an_image_is_one_column(explained: Project) -> None:
    result = importance(explained, "digits@1", repeats=2, n_boot=200)
    assert result.ranking == ("image",)
    assert result.columns[0].importance > 0.5  # shuffled images: near chance


def test_the_section_draws_bars_with_their_intervals(explained: Project) -> None:
    result = importance(explained, "planted@1", repeats=2, n_boot=200)
    (page,) = html_sections(result)
    assert page.startswith("<section><h2>Permutation importance</h2>")
    assert '"arrayminus"' in page and '"type":"bar"' in page
    assert "plotly" in page.lower()  # self-contained: plotly.js rides with the first figure
    assert all(c.column in page for c in result.columns)


def test_an_unknown_metric_names_field_value_and_choices(explained: Project) -> None:
    with pytest.raises(SpecError) as caught:
        importance(explained, "planted@1", metric="nope")
    message = str(caught.value)
    assert message.startswith("metric: 'nope' is not a classification metric; expected one of")
    assert "roc_auc" in message and "\n" not in message
    with pytest.raises(SpecError, match="metric: 'rmse' is not a classification metric"):
        importance(explained, "planted@1", metric="rmse")
    with pytest.raises(SpecError, match="repeats: 0 is not >= 1"):
        importance(explained, "planted@1", repeats=0)


def test_works_on_every_version_without_torch(explained: Project) -> None:
    """The graph alone: scores agree with the version's recorded test accuracy."""
    result = importance(explained, "cancer@1", repeats=1, n_boot=100)
    recorded = explained.store.registry.get("cancer@1").metrics["test"]["accuracy"]
    assert result.score == pytest.approx(recorded, abs=1e-9)
    assert np.isfinite([c.importance for c in result.columns]).all()
