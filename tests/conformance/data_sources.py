"""The conformance suite of data sources (:class:`mlcycle.data.DataSource`).

Subclass :class:`DataSourceConformance`, name the registered kind (the
``KIND:`` prefix), and say where the rows of :meth:`expected` are found
(:meth:`rest`, the part after the prefix, writing a file under ``folder`` if
the kind reads files). The suite reads them through the registry as the spec
and the CLI do, and checks they are the same rows, with the same
fingerprint, as the same data given in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pytest

from mlcycle.data import DataSource, FrameSource, prepare, resolve_source
from mlcycle.errors import DataError
from mlcycle.plugins import DATA_SOURCES
from mlcycle.spec import DatasetSpec, parse_spec


def known_table() -> pa.Table:
    """A small table of every plain kind of column, with missing values."""
    return pa.table(
        {
            "age": pa.array([31.5, None, 47.0, 22.25, 60.0, 38.0], pa.float64()),
            "visits": pa.array([1, 4, None, 2, 9, 3], pa.int64()),
            "city": pa.array(["paris", "lyon", None, "nice", "lyon", "paris"]),
            "member": pa.array([True, False, True, None, False, True]),
            "y": pa.array(["yes", "no", "yes", "no", "no", "yes"]),
        }
    )


class DataSourceConformance:
    """What every kind of data source must do."""

    kind: ClassVar[str]
    target: ClassVar[str] = "y"

    def expected(self) -> pa.Table:
        """The rows the source must read, as an in-memory table."""
        return known_table()

    def rest(self, folder: Path) -> str:
        """What follows ``KIND:`` to read :meth:`expected` (writing it under ``folder`` first)."""
        raise NotImplementedError

    def missing(self, folder: Path) -> str | None:
        """A ``rest`` naming no input, or None when every ``rest`` names something."""
        return str(folder / "absent")

    def _prepare(self, source: object) -> object:
        return prepare(source, DatasetSpec(target=self.target), name="d")

    def test_is_registered_and_accepted_by_the_spec(self, tmp_path: Path) -> None:
        uri = f"{self.kind}:{self.rest(tmp_path)}"
        assert self.kind in DATA_SOURCES.names()
        spec = parse_spec({"data": {"datasets": {"d": {"source": uri}}}})
        assert spec.data.datasets["d"].source == uri
        source = resolve_source(uri)
        assert isinstance(source, DataSource) and type(source) is DATA_SOURCES.get(self.kind)

    def test_reads_the_same_rows_as_the_known_table(self, tmp_path: Path) -> None:
        read = self._prepare(f"{self.kind}:{self.rest(tmp_path)}")
        known = self._prepare(FrameSource(self.expected(), "d"))
        assert read.schema == known.schema  # type: ignore[attr-defined]
        assert read.table.equals(known.table)  # type: ignore[attr-defined]
        assert read.fingerprint == known.fingerprint  # type: ignore[attr-defined]

    def test_the_fingerprint_is_stable_and_the_lineage_reads_back(self, tmp_path: Path) -> None:
        source = resolve_source(f"{self.kind}:{self.rest(tmp_path)}")
        first, second = self._prepare(source), self._prepare(source)
        assert first.fingerprint == second.fingerprint  # type: ignore[attr-defined]
        again = self._prepare(resolve_source(source.describe()))
        assert again.fingerprint == first.fingerprint  # type: ignore[attr-defined]

    def test_a_missing_input_is_a_data_error_naming_it(self, tmp_path: Path) -> None:
        rest = self.missing(tmp_path)
        if rest is None:
            return
        with pytest.raises(DataError, match="data source"):
            resolve_source(f"{self.kind}:{rest}").read()
