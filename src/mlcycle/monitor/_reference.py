"""Monitoring's reference: a version's answers on its validation split, with the truth.

Written once at registration (``reference.parquet``) and read back by
:func:`~mlcycle.monitor._window.load_reference`: drift of the predictions and
performance are judged against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlcycle.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from mlcycle.registry import Predictor

__all__ = ["reference_answers"]


def reference_answers(predictor: Predictor, validation: pa.Table, target: str) -> bytes:
    """``reference.parquet``: the model's answers on the validation split, and the truth.

    Row ``i`` is row ``i`` of the dataset version's validation split, so the
    monitor can join other columns (sensitive attributes) by position.

    Raises:
        DataError: the validation split has no rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if validation.num_rows == 0:
        raise DataError("the dataset has no validation rows: monitoring needs a reference")
    result = predictor.predict(validation.select(predictor.input_names))
    columns: dict[str, pa.Array] = {}
    if result.values is not None:
        columns["value"] = pa.array(result.values.astype(np.float64))
        columns["actual"] = validation.column(target).cast(pa.float64()).combine_chunks()
    else:
        assert result.labels is not None and result.probabilities is not None
        p = result.probabilities.astype(np.float32)
        columns["label"] = pa.array(result.labels.astype(str).tolist(), pa.string())
        columns["probabilities"] = pa.FixedSizeListArray.from_arrays(
            pa.array(p.ravel()), p.shape[1]
        )
        columns["actual"] = validation.column(target).cast(pa.string()).combine_chunks()
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return bytes(sink.getvalue().to_pybytes())
