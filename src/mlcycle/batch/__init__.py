"""Batch scoring: a registered model over a CSV or Parquet file of any size.

Streams the input in chunks (memory stays flat), scores them on ONNX Runtime
in a few threads, keeps the input's row order, sets aside the rows the model
cannot take, logs every scored chunk to the prediction log and resumes a
killed job where it stopped. Needs numpy, pyarrow and onnxruntime only:
importing this package or scoring never imports torch.

:func:`score_files_on_ray` scores a folder of Parquet files (local or on
S3) on a Ray cluster, one file per task, each with the same scorer.

Example (in a project where ``cancer`` is registered)::

    from mlcycle.batch import score_file
    summary = score_file("cancer@champion", "patients.csv", "scores.parquet")
    print(summary.scored, summary.rejected, f"{summary.rows_per_s:,.0f} rows/s")
"""

from __future__ import annotations

from mlcycle.batch._job import DEFAULT_CHUNK_ROWS, Progress, ScoreSummary, score_file
from mlcycle.batch._ray import ClusterScoreSummary, score_files_on_ray

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "ClusterScoreSummary",
    "Progress",
    "ScoreSummary",
    "score_file",
    "score_files_on_ray",
]
