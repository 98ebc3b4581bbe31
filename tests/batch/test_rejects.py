"""Rows the model cannot take go to the rejects file; the others are scored."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.batch import score_file
from tests.batch.conftest import Scoring, cancer_rows, read_output, tiny_images, write_input


def _rejects(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("chunk_rows", [64, 100_000])
def test_a_non_number_is_rejected_and_a_gap_is_imputed(
    scoring: Scoring, tmp_path: Path, chunk_rows: int
) -> None:
    frame = cancer_rows().astype({"mean_texture": object, "worst_area": object})
    frame.loc[130, "mean_texture"] = "abc"  # not a number: rejected
    frame.loc[400, "worst_area"] = "1,2"  # not a number either
    frame.loc[7, "mean_texture"] = None  # missing: the graph imputes it, the row is scored
    frame.loc[8, "worst_area"] = "nan"
    source = write_input(frame, "csv", tmp_path)

    summary = score_file(
        "cancer@champion",
        source,
        tmp_path / "s.parquet",
        project=scoring.root,
        chunk_rows=chunk_rows,
        log=False,
    )

    assert (summary.rows, summary.scored, summary.rejected) == (569, 567, 2)
    assert summary.rejects == str(tmp_path / "s.parquet.rejects.csv")
    rejects = _rejects(tmp_path / "s.parquet.rejects.csv")
    assert [(r["row"], r["patient_id"]) for r in rejects] == [("130", "p0130"), ("400", "p0400")]
    assert rejects[0]["reason"] == "column 'mean_texture': value 'abc' at row 130 is not a number"
    assert rejects[1]["reason"] == "column 'worst_area': value '1,2' at row 400 is not a number"
    # the raw values, as read
    assert rejects[0]["mean_texture"] == "abc"
    assert rejects[0]["mean_radius"] == str(frame.loc[130, "mean_radius"])
    assert list(rejects[0]) == ["row", "reason", "patient_id", *scoring.cancer.input_names]

    out = read_output(tmp_path / "s.parquet")
    good = frame.drop(index=[130, 400])
    assert out["patient_id"].tolist() == good["patient_id"].tolist()
    expected = scoring.cancer.predict(good[scoring.cancer.input_names])  # strings and all
    assert out["label"].tolist() == expected.labels.tolist()
    np.testing.assert_allclose(
        out[["proba_benign", "proba_malignant"]].to_numpy(), expected.probabilities, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_values_not_finite_in_float32_are_rejected(
    scoring: Scoring, tmp_path: Path, kind: str
) -> None:
    frame = cancer_rows()
    frame.loc[5, "mean_radius"] = np.inf
    frame.loc[77, "worst_area"] = -np.inf
    frame.loc[300, "mean_texture"] = 1e39  # finite as float64, infinite as float32
    source = write_input(frame, kind, tmp_path)

    summary = score_file(
        "cancer@champion",
        source,
        tmp_path / "s.parquet",
        project=scoring.root,
        chunk_rows=64,
        log=False,
    )

    assert (summary.scored, summary.rejected) == (566, 3)
    rejects = _rejects(tmp_path / "s.parquet.rejects.csv")
    assert [r["row"] for r in rejects] == ["5", "77", "300"]
    end = "is not a finite float32 (expected a magnitude up to 3.402823e+38)"
    assert [r["reason"] for r in rejects] == [
        f"column 'mean_radius': value inf at row 5 {end}",
        f"column 'worst_area': value -inf at row 77 {end}",
        f"column 'mean_texture': value 1e+39 at row 300 {end}",
    ]
    out = read_output(tmp_path / "s.parquet")
    assert np.isfinite(out[["proba_benign", "proba_malignant"]].to_numpy()).all()


def test_a_missing_image_cannot_be_taken(scoring: Scoring, tmp_path: Path) -> None:
    images, _ = tiny_images(50, seed=1)
    rows = images.to_pylist()
    rows[3] = None  # no image at all
    rows[41] = [float("nan")] * 16  # an image of NaNs
    table = pa.table(
        {"id": np.arange(50), "image": pa.array(rows, type=images.type), "y": ["top"] * 50}
    )
    pq.write_table(table, tmp_path / "images.parquet")

    summary = score_file(
        "tiny@champion",
        tmp_path / "images.parquet",
        tmp_path / "s.csv",
        project=scoring.root,
        rejects=tmp_path / "bad.csv",
        chunk_rows=16,
        log=False,
    )

    assert (summary.scored, summary.rejected, summary.rejects) == (48, 2, str(tmp_path / "bad.csv"))
    rejects = _rejects(tmp_path / "bad.csv")
    assert [(r["row"], r["id"]) for r in rejects] == [("3", "3"), ("41", "41")]
    assert rejects[0]["reason"].startswith("column 'image': ")
    assert rejects[1]["reason"] == "column 'image': image at row 41 holds NaN or infinite values"
    out = read_output(tmp_path / "s.csv")
    keep = [i for i in range(50) if i not in (3, 41)]
    assert out["id"].tolist() == keep
    expected = scoring.tiny.predict(table.take(pa.array(keep)).select(["image"]))
    assert out["label"].tolist() == expected.labels.tolist()


def test_a_chunk_of_only_bad_rows(scoring: Scoring, tmp_path: Path) -> None:
    frame = cancer_rows().astype({"mean_radius": object})
    frame.loc[10:19, "mean_radius"] = "?"
    source = write_input(frame, "csv", tmp_path)

    summary = score_file(
        "cancer@champion",
        source,
        tmp_path / "s.csv",
        project=scoring.root,
        chunk_rows=10,
        log=False,
    )

    assert (summary.scored, summary.rejected) == (559, 10)
    assert [int(r["row"]) for r in _rejects(tmp_path / "s.csv.rejects.csv")] == list(range(10, 20))
    out = read_output(tmp_path / "s.csv")
    assert out["patient_id"].tolist() == frame.drop(index=range(10, 20))["patient_id"].tolist()


def test_a_clean_rerun_removes_the_old_rejects_file(scoring: Scoring, tmp_path: Path) -> None:
    frame = cancer_rows().astype({"mean_radius": object})
    frame.loc[0, "mean_radius"] = "x"
    write_input(frame, "csv", tmp_path, name="bad")
    write_input(cancer_rows(), "csv", tmp_path, name="good")
    output = tmp_path / "s.parquet"
    score_file("cancer@champion", tmp_path / "bad.csv", output, project=scoring.root, log=False)
    assert (tmp_path / "s.parquet.rejects.csv").exists()
    summary = score_file(
        "cancer@champion", tmp_path / "good.csv", output, project=scoring.root, log=False
    )
    assert summary.rejects is None and not (tmp_path / "s.parquet.rejects.csv").exists()
