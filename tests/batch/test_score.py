"""Scoring files: the same predictions as ``Predictor.predict``, in every format, in order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle import DataError, NotFoundError
from mlcycle.batch import ScoreSummary, score_file
from mlcycle.predictions import PredictionLog
from tests.batch.conftest import Scoring, cancer_rows, diabetes_rows, read_output, write_input


def _expect_classification(
    out: pd.DataFrame, frame: pd.DataFrame, scoring: Scoring, ids: list[str]
) -> None:
    expected = scoring.cancer.predict(frame[scoring.cancer.input_names])
    assert list(out.columns) == [*ids, "label", "proba_benign", "proba_malignant"]
    assert out["label"].tolist() == expected.labels.tolist()
    assert expected.probabilities is not None
    np.testing.assert_allclose(
        out[["proba_benign", "proba_malignant"]].to_numpy(), expected.probabilities, atol=1e-6
    )
    for column in ids:
        assert out[column].astype(str).tolist() == frame[column].astype(str).tolist()


@pytest.mark.parametrize("kind", ["csv", "parquet", "folder"])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_every_format_gives_what_predict_gives(
    scoring: Scoring, tmp_path: Path, kind: str, suffix: str
) -> None:
    frame = cancer_rows()
    source = write_input(frame, kind, tmp_path / "in")
    output = tmp_path / f"scores{suffix}"

    summary = score_file(
        "cancer@champion", source, output, project=scoring.root, chunk_rows=100, log=False
    )

    assert (summary.rows, summary.scored, summary.rejected, summary.rejects) == (569, 569, 0, None)
    assert summary.model == scoring.cancer.ref and summary.output == str(output)
    # the id column is found by its name; the target and the note are not copied
    _expect_classification(read_output(output), frame, scoring, ["patient_id"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", output.name]


def test_regression_writes_values(scoring: Scoring, tmp_path: Path) -> None:
    frame = diabetes_rows()
    source = write_input(frame, "parquet", tmp_path)

    score_file("diabetes@champion", source, tmp_path / "v.pq", project=scoring.root, log=False)

    out = pq.read_table(tmp_path / "v.pq")
    assert out.column_names == ["visit_id", "value"]
    assert out.schema.field("visit_id").type == pa.int64()  # Parquet keeps the id's type
    expected = scoring.diabetes.predict(frame[scoring.diabetes.input_names]).values
    np.testing.assert_allclose(out.column("value").to_numpy(), expected, rtol=1e-6)
    assert out.column("visit_id").to_pylist() == frame["visit_id"].tolist()


def test_order_is_kept_with_many_workers_and_small_chunks(scoring: Scoring, tmp_path: Path) -> None:
    frame = cancer_rows().sample(frac=1.0, random_state=3).reset_index(drop=True)
    source = write_input(frame, "csv", tmp_path)

    summary = score_file(
        "cancer@champion",
        source,
        tmp_path / "s.parquet",
        project=scoring.root,
        chunk_rows=7,
        workers=4,
        id_columns=["patient_id", "note"],
        log=False,
    )

    assert summary.scored == 569
    _expect_classification(
        read_output(tmp_path / "s.parquet"), frame, scoring, ["patient_id", "note"]
    )


def test_no_id_column_gives_predictions_only(scoring: Scoring, tmp_path: Path) -> None:
    frame = cancer_rows().drop(columns=["patient_id"])
    source = write_input(frame, "parquet", tmp_path)
    score_file("cancer@champion", source, tmp_path / "s.csv", project=scoring.root, log=False)
    _expect_classification(read_output(tmp_path / "s.csv"), frame, scoring, [])


def test_scored_chunks_go_to_the_prediction_log(scoring: Scoring, tmp_path: Path) -> None:
    frame = diabetes_rows()
    with_ids = write_input(frame, "csv", tmp_path, name="with_ids")
    without = write_input(frame.drop(columns=["visit_id"]), "parquet", tmp_path, name="without")

    first = score_file(
        "diabetes@champion", with_ids, tmp_path / "a.pq", project=scoring.root, chunk_rows=100
    )
    second = score_file(
        "diabetes@champion", without, tmp_path / "b.pq", project=scoring.root, chunk_rows=100
    )

    log = PredictionLog(scoring.root / ".mlcycle" / "log")
    table = log.read("diabetes")
    log.close()
    assert set(table.column("source").to_pylist()) == {"batch"}
    assert set(table.column("version").to_pylist()) == {scoring.diabetes.version}
    values = dict(
        zip(table.column("request_id").to_pylist(), table.column("value").to_pylist(), strict=True)
    )
    # the id column's values where the input has one, else JOB:ROW (row numbers from 0)
    assert {r for r in values if ":" not in r} == {str(v) for v in frame["visit_id"]}
    assert {r for r in values if r.startswith(f"{second.job_id}:")} == {
        f"{second.job_id}:{i}" for i in range(len(frame))
    }
    assert first.job_id != second.job_id and table.num_rows == 2 * len(frame)
    expected = scoring.diabetes.predict(frame[scoring.diabetes.input_names]).values
    assert expected is not None
    np.testing.assert_allclose(
        [values[f"{second.job_id}:{i}"] for i in range(len(frame))], expected, rtol=1e-6
    )
    np.testing.assert_allclose([values[str(v)] for v in frame["visit_id"]], expected, rtol=1e-6)


def test_a_log_sample_keeps_the_same_rows_whatever_the_chunks(
    scoring: Scoring, tmp_path: Path
) -> None:
    frame = cancer_rows()  # 569 rows with a patient_id column: request ids are the ids
    expected = scoring.cancer.predict(frame[scoring.cancer.input_names])
    assert expected.labels is not None
    rows = []
    for tag, chunk_rows, workers in (("a", 50, 1), ("b", 7, 3)):
        frame["patient_id"] = [f"{tag}-{i}" for i in range(len(frame))]
        source = write_input(frame, "parquet", tmp_path / tag)
        out = tmp_path / f"{tag}.parquet"
        summary = score_file(
            "cancer@champion",
            source,
            out,
            project=scoring.root,
            chunk_rows=chunk_rows,
            workers=workers,
            log_sample=0.2,
        )
        assert summary.scored == 569 and read_output(out).shape[0] == 569  # output is whole
        log = PredictionLog(scoring.root / ".mlcycle" / "log")
        table = log.read("cancer")
        log.close()
        ids = table.column("request_id").to_pylist()
        mine = {r: k for k, r in enumerate(ids) if r.startswith(f"{tag}-")}
        rows.append({int(r.split("-")[1]) for r in mine})
        for request, k in sorted(mine.items())[:20]:  # each logged row is that row
            row = int(request.split("-")[1])
            assert table.column("label")[k].as_py() == expected.labels[row]
            assert table.column("ref.row")[k].as_py() == row  # points at that input row
    # the same rows (by row number) with other chunks and workers, about a fifth of them
    assert rows[0] == rows[1] and 0.15 * 569 < len(rows[0]) < 0.25 * 569
    assert min(rows[0]) < 100 and max(rows[0]) > 469  # spread over the file, not its start
    with pytest.raises(DataError, match=r"log_sample: 1.5 is not in \(0, 1\]"):
        score_file(
            "cancer@champion", source, tmp_path / "x.pq", project=scoring.root, log_sample=1.5
        )


def test_a_missing_model_input_is_named(scoring: Scoring, tmp_path: Path) -> None:
    frame = cancer_rows().drop(columns=["worst_area"])
    source = write_input(frame, "parquet", tmp_path)
    with pytest.raises(DataError, match=r"lacks column 'worst_area': cancer@\d+ takes mean_radius"):
        score_file("cancer@champion", source, tmp_path / "s.parquet", project=scoring.root)
    assert not (tmp_path / "s.parquet.parts").exists()


@pytest.mark.parametrize(
    ("input_name", "output_name", "error", "message"),
    [
        ("nope.csv", "s.parquet", NotFoundError, "input '.*nope.csv' does not exist"),
        ("rows.txt", "s.parquet", DataError, r"expected a \.csv file, a \.parquet"),
        ("rows.csv", "s.json", DataError, r"expected a \.parquet, \.pq or \.csv file name"),
        ("rows.csv", "rows.csv", DataError, "is the input"),
        ("folder", "folder/s.parquet", DataError, "is inside the input folder"),
    ],
)
def test_bad_paths_are_explained(
    scoring: Scoring,
    tmp_path: Path,
    input_name: str,
    output_name: str,
    error: type[Exception],
    message: str,
) -> None:
    write_input(cancer_rows(), "csv", tmp_path)
    write_input(cancer_rows(), "folder", tmp_path, name="folder")
    (tmp_path / "rows.txt").write_text("a,b\n")
    with pytest.raises(error, match=message):
        score_file(
            "cancer@champion", tmp_path / input_name, tmp_path / output_name, project=scoring.root
        )


def test_unknown_id_column_and_empty_input(scoring: Scoring, tmp_path: Path) -> None:
    source = write_input(cancer_rows(), "parquet", tmp_path)
    with pytest.raises(DataError, match="id column 'order_id' is not in"):
        score_file(
            "cancer@champion",
            source,
            tmp_path / "s.pq",
            project=scoring.root,
            id_columns=["order_id"],
        )
    empty = write_input(cancer_rows().iloc[:0], "parquet", tmp_path, name="empty")
    with pytest.raises(DataError, match="has no rows to score"):
        score_file("cancer@champion", empty, tmp_path / "e.pq", project=scoring.root)


def test_summary_is_json_able(scoring: Scoring, tmp_path: Path) -> None:
    source = write_input(cancer_rows(), "parquet", tmp_path)
    summary = score_file(
        "cancer@champion", source, tmp_path / "s.pq", project=scoring.root, log=False
    )
    assert isinstance(summary, ScoreSummary)
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["rows"] == 569 and data["rows_per_s"] > 0 and data["resumed_rows"] == 0


def test_importing_and_scoring_never_import_torch(scoring: Scoring, tmp_path: Path) -> None:
    source = write_input(cancer_rows(), "csv", tmp_path)
    code = (
        "import sys\n"
        "import mlcycle.batch\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "s = mlcycle.batch.score_file('cancer@champion', sys.argv[1], sys.argv[2], project=sys.argv[3])\n"
        "print(s.scored, 'torch' in sys.modules, 'mlcycle.train' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(source), str(tmp_path / "s.pq"), str(scoring.root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["569", "False", "False"]
