"""The ONNX Runtime call size: measured on large inputs, given on request, never in the output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mlcycle.batch._job as job
from mlcycle import DataError
from mlcycle.batch import score_file
from mlcycle.batch._predict import CANDIDATE_SLICES, SLICE_ROWS, ChunkPredictor
from mlcycle.cli._app import main
from mlcycle.registry import Predictor
from tests.batch.conftest import Scoring, cancer_rows, diabetes_rows, write_input
from tests.batch.test_resume import Stop, _stop_after


def _feeds(predictor: Predictor, frame: object, repeat: int) -> dict[str, np.ndarray]:
    feeds = predictor.feeds(frame)
    return {k: np.tile(v, repeat) for k, v in feeds.items()}


def test_calibration_times_sizes_around_the_default_and_keeps_the_fastest(
    scoring: Scoring,
) -> None:
    feeds = _feeds(scoring.cancer, cancer_rows()[scoring.cancer.input_names], 30)  # 17,070 rows
    rows = len(next(iter(feeds.values())))
    run = ChunkPredictor(scoring.cancer)
    assert run.slice_rows == SLICE_ROWS and run.rates == {}

    chosen = run.calibrate(feeds, rows)

    assert chosen == run.slice_rows and chosen in CANDIDATE_SLICES
    assert {2_048, 4_096, 8_192} <= set(run.rates) and chosen in run.rates
    assert all(rate > 0 for rate in run.rates.values())
    # no size timed was clearly (5%) faster than the one chosen
    assert max(run.rates.values()) <= 1.05 * run.rates[chosen]


@pytest.mark.parametrize("model", ["cancer", "diabetes"])
def test_predictions_do_not_depend_on_the_slice_size(scoring: Scoring, model: str) -> None:
    predictor = scoring.cancer if model == "cancer" else scoring.diabetes
    frame = cancer_rows() if model == "cancer" else diabetes_rows()
    feeds = _feeds(predictor, frame[predictor.input_names], 8)
    rows = len(next(iter(feeds.values())))

    outputs = []
    for size in (3, 7, 1_024, 4_096, 65_536):
        scored = ChunkPredictor(predictor, size)(feeds, rows).prediction
        outputs.append(scored.probabilities if model == "cancer" else scored.values)

    for other in outputs[1:]:
        np.testing.assert_array_equal(other, outputs[0])  # exactly, not approximately


def test_the_choice_is_recorded_and_a_given_size_is_honoured(
    scoring: Scoring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_input(cancer_rows(), "parquet", tmp_path / "in")
    options = {"project": scoring.root, "log": False, "chunk_rows": 200}

    small = score_file("cancer@champion", source, tmp_path / "d.parquet", **options)
    given = score_file("cancer@champion", source, tmp_path / "g.parquet", slice_rows=16, **options)
    monkeypatch.setattr(job, "CALIBRATE_MIN_ROWS", 1)  # this input then counts as large
    measured = score_file("cancer@champion", source, tmp_path / "m.parquet", **options)

    assert (small.slice_rows, small.slice_choice, small.slice_rates) == (SLICE_ROWS, "default", {})
    assert (given.slice_rows, given.slice_choice, given.slice_rates) == (16, "given", {})
    assert measured.slice_choice == "measured" and measured.calibration_s > 0
    assert str(measured.slice_rows) in measured.slice_rates
    assert set(measured.slice_rates) <= {str(s) for s in CANDIDATE_SLICES}
    assert given.workers >= 1 and given.threads >= 1
    data = json.loads(json.dumps(measured.to_dict()))
    assert data["slice_rows"] == measured.slice_rows and data["slice_choice"] == "measured"
    same = (tmp_path / "d.parquet").read_bytes()
    assert (tmp_path / "g.parquet").read_bytes() == same
    assert (tmp_path / "m.parquet").read_bytes() == same


@pytest.mark.parametrize("bad", [0, -4096])
def test_a_bad_slice_size_is_one_line_naming_the_field(
    scoring: Scoring, tmp_path: Path, bad: int
) -> None:
    source = write_input(cancer_rows(), "parquet", tmp_path)
    with pytest.raises(DataError, match=rf"^slice_rows: {bad} is not >= 1 \(rows per ONNX"):
        score_file(
            "cancer@champion", source, tmp_path / "o.parquet", project=scoring.root, slice_rows=bad
        )
    assert not (tmp_path / "o.parquet.parts").exists()


def test_a_resumed_measured_job_gives_the_uninterrupted_output(
    scoring: Scoring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job, "CALIBRATE_MIN_ROWS", 1)
    source = write_input(cancer_rows(), "parquet", tmp_path)
    options = {"project": scoring.root, "chunk_rows": 50, "workers": 2, "log": False}
    whole = score_file(
        "cancer@champion", source, tmp_path / "whole.parquet", slice_rows=8, **options
    )

    output = tmp_path / "out.parquet"
    with pytest.raises(Stop):
        score_file("cancer@champion", source, output, progress=_stop_after(4), **options)
    resumed = score_file("cancer@champion", source, output, **options)

    assert whole.slice_choice == "given" and resumed.slice_choice == "measured"
    assert resumed.resumed_rows >= 200
    assert output.read_bytes() == (tmp_path / "whole.parquet").read_bytes()


def test_the_cli_prints_and_takes_the_call_size(
    scoring: Scoring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_input(cancer_rows(), "parquet", tmp_path)
    args = ["-p", str(scoring.root), "score", "cancer@champion", str(source), "--no-log", "-q"]

    assert main([*args, str(tmp_path / "a.parquet"), "--slice-rows", "512", "--workers", "1"]) == 0
    human = capsys.readouterr().out
    assert main([*args, str(tmp_path / "b.parquet"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)

    assert "512-row ONNX Runtime calls (given), 1 worker × " in human
    assert (data["slice_rows"], data["slice_choice"]) == (SLICE_ROWS, "default")
    assert data["workers"] >= 1 and data["threads"] >= 1
