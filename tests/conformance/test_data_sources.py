"""Every registered kind of data source runs the conformance suite; a new one is one class."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sklearn.datasets import load_iris

from mlcycle import Project
from mlcycle.data import DataSource
from mlcycle.data._base import safe_name
from mlcycle.data._fashion import DEFAULT_DIR, FASHION_MNIST_CLASSES
from mlcycle.errors import DataError, SpecError
from mlcycle.plugins import DATA_SOURCES
from mlcycle.spec import parse_spec
from tests.conformance.data_sources import DataSourceConformance, known_table


class TestCsv(DataSourceConformance):
    kind = "csv"

    def rest(self, folder: Path) -> str:
        path = folder / "known.csv"
        table = known_table()
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.column_names)
            for row in table.to_pylist():
                writer.writerow(["" if v is None else v for v in row.values()])
        return str(path)


class TestParquet(DataSourceConformance):
    kind = "parquet"

    def rest(self, folder: Path) -> str:
        pq.write_table(known_table(), folder / "known.parquet")
        return str(folder / "known.parquet")


class TestSklearn(DataSourceConformance):
    kind = "sklearn"
    target = "target"

    def expected(self) -> pa.Table:
        iris = load_iris()
        columns = {safe_name(n): iris.data[:, i] for i, n in enumerate(iris.feature_names)}
        columns["target"] = iris.target_names[iris.target].tolist()
        return pa.table(columns)

    def rest(self, folder: Path) -> str:
        return "iris"

    def missing(self, folder: Path) -> str | None:
        return "titanic"


class TestFashionMnist(DataSourceConformance):
    kind = "fashion-mnist"
    target = "target"

    def expected(self) -> pa.Table:
        # The IDX format read independently: a 16-byte header, then 28x28 bytes per image.
        with gzip.open(DEFAULT_DIR / "train-images-idx3-ubyte.gz") as handle:
            pixels = np.frombuffer(handle.read(16 + 40 * 784)[16:], np.uint8)
        with gzip.open(DEFAULT_DIR / "train-labels-idx1-ubyte.gz") as handle:
            labels = np.frombuffer(handle.read(8 + 40)[8:], np.uint8)
        image = pa.FixedSizeListArray.from_arrays(pa.array(pixels.astype(np.float32)), 784)
        names = [FASHION_MNIST_CLASSES[i] for i in labels]
        return pa.table({"image": image, "target": names})

    def rest(self, folder: Path) -> str:
        return "40"

    def missing(self, folder: Path) -> str | None:
        return "many"

    def _prepare(self, source: object) -> object:
        from mlcycle.data import prepare
        from mlcycle.spec import DatasetSpec

        spec = DatasetSpec(target="target", types={"image": "image"})
        if not isinstance(source, str):  # the in-memory table needs the image's shape
            source = _Shaped(source)  # type: ignore[arg-type]
        return prepare(source, spec, name="d")


class _Shaped(DataSource):
    """An in-memory table with the hints fashion-mnist gives (the image's shape)."""

    def __init__(self, inner: DataSource) -> None:
        self.inner = inner

    def read(self) -> pa.Table:
        return self.inner.read()

    @property
    def default_name(self) -> str:
        return "d"

    def describe(self) -> str:
        return "frame:d"

    @property
    def hints(self) -> dict[str, Any]:
        return {"target": "target", "types": {"image": "image"}, "image_shape": [28, 28]}


def test_every_built_in_runs_the_suite() -> None:
    covered = {cls.kind for cls in DataSourceConformance.__subclasses__()}
    assert set(DATA_SOURCES.names()) <= covered


class JsonLinesSource(DataSource):
    """A toy kind of source, as a user would write it in one file: JSON Lines."""

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = path, label

    @classmethod
    def from_uri(
        cls, rest: str, *, base_dir: Path | None = None, given: str = ""
    ) -> JsonLinesSource:
        path = Path(rest) if base_dir is None else Path(base_dir) / rest
        return cls(path, given or f"jsonl:{rest}")

    @property
    def default_name(self) -> str:
        return self.path.stem

    def describe(self) -> str:
        return f"jsonl:{self.path.resolve()}"

    def read(self) -> pa.Table:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            raise DataError(f"data source {self.label!r}: no such file") from None
        return pa.Table.from_pylist([json.loads(line) for line in lines if line.strip()])


@pytest.fixture
def jsonl() -> Iterator[type[JsonLinesSource]]:
    DATA_SOURCES.register("jsonl")(JsonLinesSource)
    yield JsonLinesSource
    DATA_SOURCES.unregister("jsonl")


@pytest.mark.usefixtures("jsonl")
class TestJsonLines(DataSourceConformance):
    """A new kind of source: its class and one registration line, and it passes the suite."""

    kind = "jsonl"

    def rest(self, folder: Path) -> str:
        path = folder / "known.jsonl"
        path.write_text("\n".join(json.dumps(row) for row in known_table().to_pylist()))
        return str(path)

    def test_a_project_versions_it_from_the_spec(self, tmp_path: Path) -> None:
        root = tmp_path / "p"
        Project.init(root, name="p").close()
        known = {"source": f"jsonl:{self.rest(tmp_path)}", "target": "y"}
        (root / "mlcycle.yaml").write_text(yaml.safe_dump({"data": {"datasets": {"known": known}}}))
        with Project.open(root) as project:
            added = project.datasets.add("known")
        assert added.version.n_rows == 6 and added.version.source.startswith("jsonl:")


def test_an_unregistered_kind_is_refused_with_the_registered_names() -> None:
    with pytest.raises(SpecError, match="unknown kind of data source 'jsonl'; registered: csv"):
        parse_spec({"data": {"datasets": {"d": {"source": "jsonl:rows.jsonl"}}}})
