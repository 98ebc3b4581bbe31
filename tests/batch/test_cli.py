"""``mlcycle score``: summary, JSON, progress bar and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcycle.cli._app import main
from tests.batch.conftest import Scoring, cancer_rows, read_output, run_cli, write_input


def test_json_summary(scoring: Scoring, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = cancer_rows().astype({"mean_radius": object})
    frame.loc[2, "mean_radius"] = "big"
    source = write_input(frame, "csv", tmp_path)
    args = ["-p", str(scoring.root), "score", "cancer@champion", str(source)]

    code = main([*args, str(tmp_path / "s.csv"), "--json", "--chunk-rows", "100", "--workers", "2"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (569, 568, 1)
    assert summary["rejects"] == str(tmp_path / "s.csv.rejects.csv")
    assert summary["model"] == scoring.cancer.ref and summary["rows_per_s"] > 0
    assert len(read_output(tmp_path / "s.csv")) == 568


def test_human_summary_and_options(
    scoring: Scoring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_input(cancer_rows(), "parquet", tmp_path)
    code = main(
        [
            "-p",
            str(scoring.root),
            "score",
            "cancer@champion",
            str(source),
            str(tmp_path / "s.parquet"),
            "--id-column",
            "note",
            "--id-column",
            "patient_id",
            "--quiet",
            "--no-log",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0 and captured.err == ""
    assert "scored 569 of 569 rows with cancer@1" in captured.out
    assert "rows/s" in captured.out and "rejected" not in captured.out
    assert list(read_output(tmp_path / "s.parquet").columns[:2]) == ["note", "patient_id"]


def test_errors_are_one_red_line(
    scoring: Scoring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_input(cancer_rows().drop(columns=["mean_area"]), "csv", tmp_path)
    code = main(["-p", str(scoring.root), "score", "cancer@champion", str(source), "o.parquet"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    line = " ".join(captured.err.split())  # Rich wraps at the terminal's width
    assert line.startswith("error: input ") and "lacks column 'mean_area'" in line
    assert line.endswith(
        "takes mean_radius, mean_texture, mean_perimeter, mean_area, mean_smoothness, ... (30 in all)"
    )
    assert "Traceback" not in captured.err

    code = main(["-p", str(scoring.root), "score", "nosuch@champion", str(source), "o.parquet"])
    assert code == 1 and "nosuch" in capsys.readouterr().err

    good = write_input(cancer_rows(), "csv", tmp_path / "good")
    args = ["-p", str(scoring.root), "score", "cancer@champion", str(good), "o.parquet"]
    assert main([*args, "--log-sample", "0"]) == 1
    line = " ".join(capsys.readouterr().err.split())
    assert line == "error: log_sample: 0.0 is not in (0, 1]: the fraction of rows to log"


def test_progress_bar_shows_rows_per_second(scoring: Scoring, tmp_path: Path) -> None:
    source = write_input(cancer_rows(), "parquet", tmp_path)
    args = ["-p", str(scoring.root), "score", "cancer@champion", str(source)]
    shown = run_cli(
        *args,
        str(tmp_path / "a.parquet"),
        "--chunk-rows",
        "50",
        cwd=tmp_path,
        env={"FORCE_COLOR": "1"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "569/569" in shown.stderr and "rows/s" in shown.stderr
    quiet = run_cli(
        *args, str(tmp_path / "b.parquet"), "--quiet", cwd=tmp_path, env={"FORCE_COLOR": "1"}
    )
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_refused_resume_names_the_flags(
    scoring: Scoring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlcycle.batch import score_file

    source = write_input(cancer_rows(), "parquet", tmp_path)
    output = tmp_path / "s.csv"
    done: list[int] = []

    def stop_after_two(rows: int, total: int | None) -> None:
        done.append(rows)
        if len(done) > 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_file(
            "cancer@champion",
            source,
            output,
            project=scoring.root,
            chunk_rows=100,
            log=False,
            progress=stop_after_two,
        )
    args = ["-p", str(scoring.root), "score", "cancer@champion", str(source), str(output)]
    assert main([*args, "--chunk-rows", "10", "--no-log"]) == 1
    line = " ".join(capsys.readouterr().err.split())
    assert "chunk size (--chunk-rows) differ" in line
    assert line.endswith("run with --restart to discard them and start over")
