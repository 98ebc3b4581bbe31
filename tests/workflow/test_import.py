"""Models trained elsewhere enter the registry: checked against the data, the native model, evaluated."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import mlcycle
from mlcycle import DataError, ParityError, Project
from mlcycle.registry import make_signature
from mlcycle.train import fit_layout
from mlcycle.workflow import register_model

NUMERIC = ["radius", "texture", "perimeter", "area"]


def tumours() -> pd.DataFrame:
    """breast_cancer's first columns, a categorical size band, gaps in one column."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, :4].copy()
    frame.columns = NUMERIC
    frame["size"] = pd.cut(frame["radius"], 3, labels=["small", "medium", "large"]).astype(str)
    frame.loc[::7, "texture"] = np.nan
    frame["diagnosis"] = np.where(data.target == 1, "benign", "malignant")
    return frame


def pipeline() -> Pipeline:
    numbers = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    columns = ColumnTransformer(
        [
            ("numbers", numbers, NUMERIC),
            ("bands", OneHotEncoder(handle_unknown="ignore"), ["size"]),
        ]
    )
    return Pipeline([("columns", columns), ("model", LogisticRegression(max_iter=500))])


class Net(torch.nn.Module):
    """A user's network on breast_cancer's 30 columns: standardises, then a small MLP (logits)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.body = torch.nn.Sequential(
            torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body((x - self.mean) / self.std)
        return out


def matrix(table: pa.Table, columns: list[str]) -> torch.Tensor:
    return torch.tensor(
        np.column_stack([table.column(c).to_numpy().astype(np.float32) for c in columns])
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = Path(tmp_path_factory.mktemp("import")) / "proj"
    with Project.init(root, name="proj") as opened:
        opened.datasets.add(tumours(), name="tumours", target="diagnosis")
        opened.datasets.add("sklearn:breast_cancer")
        yield opened


@pytest.fixture(scope="module")
def fitted(project: Project) -> Pipeline:
    train = project.datasets.load_split("tumours@1")["train"].to_pandas()
    return pipeline().fit(train.drop(columns=["diagnosis"]), train["diagnosis"])


@pytest.fixture(scope="module")
def net(project: Project) -> Net:
    schema = project.datasets.schema("breast_cancer@1")
    train = project.datasets.load_split("breast_cancer@1")["train"]
    x = matrix(train, list(schema.features))
    assert schema.classes is not None
    y = torch.tensor([schema.classes.index(str(v)) for v in train.column("target").to_pylist()])
    torch.manual_seed(0)
    model = Net(x.mean(0), x.std(0))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    return model.eval()


def implied_signature(project: Project, ref: str) -> dict[str, Any]:
    """What make_signature says a model trained on ``ref`` takes and answers."""
    version = project.datasets.get(ref)
    schema = project.datasets.schema(version)
    layout = fit_layout(schema, project.datasets.load_split(version)["train"])
    return make_signature(
        layout,
        task=str(schema.task),
        target=schema.target,
        classes=list(schema.classes) if schema.classes is not None else None,
        profile=version.profile,
        context=[],
    )


def test_a_pipeline_over_raw_columns_registers_and_serves_its_own_answers(
    project: Project, fitted: Pipeline
) -> None:
    version = register_model(
        fitted, data="tumours@1", name="tumour", alias="champion", project=project
    )
    parity = version.metrics["parity"]
    assert parity["native"] == "scikit-learn Pipeline" and parity["rows"] > 0
    assert parity["max_abs_diff"] <= 1e-5 and parity["labels_identical"]
    assert version.lineage["imported"]["format"] == "sklearn"
    assert version.lineage["imported"]["source"] == "sklearn.pipeline.Pipeline"
    assert version.lineage["imported"]["inputs"] == "columns"
    assert len(version.lineage["imported"]["sha256"]) == 64
    assert version.lineage["dataset"] == "tumours@1" and version.run_id is None
    assert version.signature == implied_signature(project, "tumours@1")

    test = project.datasets.load_split("tumours@1")["test"]
    native = fitted.predict_proba(test.to_pandas().drop(columns=["diagnosis"]))
    served = mlcycle.load("tumour@champion", project=project)
    np.testing.assert_allclose(served.predict_proba(test), native, atol=1e-5)
    # Test metrics come from training's evaluation, intervals included.
    truth = test.column("diagnosis").to_numpy(zero_copy_only=False)
    accuracy = float(np.mean(fitted.predict(test.to_pandas()) == truth))
    assert version.metrics["test"]["accuracy"] == pytest.approx(accuracy)
    interval = version.metrics["test_ci"]["accuracy"]
    assert interval["low"] <= accuracy <= interval["high"]
    card = project.artifacts.read_bytes(version.files["card.md"]).decode()
    assert "(imported)" in card and "trained outside mlcycle: sklearn" in card
    assert "ONNX Runtime matches scikit-learn Pipeline" in card
    for name in ("reference.parquet", "ood.json"):
        assert name in version.files


def test_a_users_torch_module_takes_the_columns_in_schema_order(project: Project, net: Net) -> None:
    version = register_model(net, data="breast_cancer@1", name="net", project=project)
    imported = version.lineage["imported"]
    assert imported["format"] == "torch" and imported["inputs"] == "matrix"
    features = list(project.datasets.schema("breast_cancer@1").features)
    assert f"[N, {len(features)}]" in imported["mapping"]
    assert f"({', '.join(features)})" in imported["mapping"]  # the order it is fed, said
    assert version.metrics["parity"]["native"] == "torch Net"
    assert version.metrics["parity"]["max_abs_diff"] <= 1e-4
    assert version.signature == implied_signature(project, "breast_cancer@1")

    test = project.datasets.load_split("breast_cancer@1")["test"]
    with torch.no_grad():
        expected = torch.softmax(net(matrix(test, features)), dim=1).numpy()
    got = mlcycle.load("net@1", project=project).predict_proba(test)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_an_onnx_graph_with_other_input_names_is_refused_naming_them(project: Project) -> None:
    renamed = _per_column_graph(["radius", "texture", "perimeter", "surface"])
    with pytest.raises(DataError) as error:
        register_model(renamed, data="tumours@1", name="renamed", project=project)
    message = str(error.value)
    assert "missing inputs for the columns ['area', 'size']" in message
    assert "inputs ['surface'] are no feature column" in message
    assert "\n" not in message
    typed = _per_column_graph([*NUMERIC, "size"])
    with pytest.raises(DataError, match=r"'size' is categorical but the graph takes float"):
        register_model(typed, data="tumours@1", name="typed", project=project)


def _per_column_graph(names: list[str]) -> bytes:
    """A graph taking a float [N, 1] input of each name, answering two probabilities."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Concat", names, ["stacked"], axis=1),
        helper.make_node("ReduceSum", ["stacked"], ["total"], keepdims=1),
        helper.make_node("Concat", ["total", "total"], ["pair"], axis=1),
        helper.make_node("Softmax", ["pair"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "per-column",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 1]) for n in names],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


def test_a_graph_with_another_number_of_classes_is_refused_naming_them(
    project: Project,
) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    rng = np.random.default_rng(0)
    three = LogisticRegression(max_iter=200).fit(rng.normal(size=(60, 30)), np.arange(60) % 3)
    graph = convert_sklearn(
        three, initial_types=[("x", FloatTensorType([None, 30]))], options={"zipmap": False}
    )
    with pytest.raises(DataError) as error:
        register_model(
            graph.SerializeToString(), data="breast_cancer@1", name="three", project=project
        )
    assert "3 columns; the dataset has 2 classes ['benign', 'malignant']" in str(error.value)


def test_a_matrix_of_dynamic_width_is_refused_in_one_line(project: Project) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    rng = np.random.default_rng(0)
    model = LogisticRegression().fit(rng.normal(size=(40, 30)), np.arange(40) % 2)
    graph = convert_sklearn(
        model, initial_types=[("x", FloatTensorType([None, None]))], options={"zipmap": False}
    )
    with pytest.raises(DataError) as error:
        register_model(
            graph.SerializeToString(), data="breast_cancer@1", name="dynamic", project=project
        )
    assert "dynamic number of columns" in str(error.value) and "\n" not in str(error.value)


def test_a_file_that_is_not_onnx_is_refused_naming_it(project: Project, tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("radius,texture\n1,2\n")
    with pytest.raises(DataError) as error:
        register_model(fake, data="tumours@1", name="fake", project=project)
    assert str(error.value) == f"{fake}: not an ONNX model (no graph could be read from it)"


class Stump(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx has no converter for."""

    def fit(self, x: Any, y: Any) -> Stump:
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, x: Any) -> np.ndarray[Any, Any]:
        return np.full((len(x), len(self.classes_)), 1 / len(self.classes_))


def test_an_estimator_skl2onnx_cannot_convert_is_named(project: Project) -> None:
    train = project.datasets.load_split("breast_cancer@1")["train"].to_pandas()
    x, y = train.drop(columns=["target"]), train["target"]
    with pytest.raises(DataError, match=r"^skl2onnx cannot convert the Stump: "):
        register_model(Stump().fit(x, y), data="breast_cancer@1", name="s", project=project)
    inside = make_pipeline(StandardScaler(), Stump()).fit(x, y)
    with pytest.raises(DataError, match=r"the Pipeline \(its step Stump has no converter\)"):
        register_model(inside, data="breast_cancer@1", name="s", project=project)


class Shifty(Net):
    """Answers otherwise while torch exports it: the graph disagrees with the module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if torch.compiler.is_exporting():
            return out + 5.0 * torch.arange(2, dtype=out.dtype)
        return out


def test_a_failed_parity_check_registers_nothing(project: Project, net: Net) -> None:
    shifty = Shifty(net.mean, net.std)
    shifty.body.load_state_dict(net.body.state_dict())
    with pytest.raises(ParityError, match="ONNX Runtime and torch Shifty probabilities differ"):
        register_model(shifty.eval(), data="breast_cancer@1", name="shifty", project=project)
    assert "shifty" not in [m.name for m in project.store.registry.list_models()]


def test_the_onnx_bytes_are_hashed_as_given_and_not_checked_against_a_native_model(
    project: Project, fitted: Pipeline, tmp_path: Path
) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial = [(c, FloatTensorType([None, 1])) for c in NUMERIC]
    initial.append(("size", StringTensorType([None, 1])))
    path = tmp_path / "tumour.onnx"
    path.write_bytes(
        convert_sklearn(
            fitted, initial_types=initial, options={"zipmap": False}
        ).SerializeToString()
    )
    version = register_model(path, data="tumours@1", name="from-file", project=project)
    assert version.lineage["imported"] == {
        "format": "onnx",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "source": str(path),
        "inputs": "columns",
    }
    assert version.metrics["parity"]["checked"] is False
    test = project.datasets.load_split("tumours@1")["test"]
    np.testing.assert_allclose(
        mlcycle.load("from-file@1", project=project).predict_proba(test),
        fitted.predict_proba(test.to_pandas()),
        atol=1e-5,
    )


def test_imported_models_batch_score_are_monitored_and_go_through_the_gate(
    project: Project, fitted: Pipeline, net: Net, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from mlcycle.batch import score_file
    from mlcycle.loop import judge_versions
    from mlcycle.monitor import monitor

    train = project.datasets.load_split("tumours@1")["train"].to_pandas()
    weak = pipeline().set_params(model__C=1e-6)  # all but the majority class
    weak.fit(train.drop(columns=["diagnosis"]), train["diagnosis"])
    register_model(weak, data="tumours@1", name="gated", alias="champion", project=project)
    register_model(fitted, data="tumours@1", name="gated", project=project)

    test = project.datasets.load_split("tumours@1")["test"]
    rows = tmp_path / "rows.parquet"
    pq.write_table(test, rows)
    summary = score_file("gated@2", rows, tmp_path / "scores.parquet", project=project)
    assert summary.scored == test.num_rows and summary.rejected == 0
    scores = pq.read_table(tmp_path / "scores.parquet")
    native = fitted.predict_proba(test.to_pandas())
    np.testing.assert_allclose(scores.column("proba_malignant").to_numpy(), native[:, 1], atol=1e-5)

    watched = monitor(project, "gated@2", source="batch")
    assert {d.column for d in watched.features.columns} >= {*NUMERIC, "size"}

    judged = judge_versions(project, "gated@champion", "gated@2")
    assert judged.holdout == f"tumours@1 (test split, {test.num_rows} rows)"
    assert judged.verdict.promote and judged.verdict.delta > 0.1, judged.verdict.reasons

    # The torch module imported on breast_cancer batch-scores too.
    version = register_model(net, data="breast_cancer@1", name="net-batch", project=project)
    cancer = project.datasets.load_split("breast_cancer@1")["test"]
    pq.write_table(cancer, tmp_path / "cancer.parquet")
    summary = score_file(
        version.ref, tmp_path / "cancer.parquet", tmp_path / "c.parquet", project=project
    )
    assert summary.scored == cancer.num_rows


def test_imported_models_serve_to_tritonclient(
    project: Project, fitted: Pipeline, net: Net
) -> None:
    import tritonclient.http as triton

    from mlcycle.serve import ServeSettings, create_app, serve_in_thread

    register_model(fitted, data="tumours@1", name="served", alias="champion", project=project)
    register_model(
        net, data="breast_cancer@1", name="served-net", alias="champion", project=project
    )
    rows = project.datasets.load_split("tumours@1")["test"].slice(0, 5)
    cancer = project.datasets.load_split("breast_cancer@1")["test"].slice(0, 5)
    features = list(project.datasets.schema("breast_cancer@1").features)
    with torch.no_grad():
        net_answers = torch.softmax(net(matrix(cancer, features)), dim=1).numpy()
    cases = [
        ("served", rows, fitted.predict_proba(rows.to_pandas()), [*NUMERIC, "size"]),
        ("served-net", cancer, net_answers, features),
    ]
    for name, table, expected, columns in cases:
        settings = ServeSettings(project=project.root, ref=f"{name}@champion", poll_s=0)
        with serve_in_thread(create_app(settings)) as url:
            client = triton.InferenceServerClient(url.removeprefix("http://"))
            inputs = []
            for column in columns:
                values = table.column(column).to_numpy(zero_copy_only=False)
                if column == "size":
                    tensor = triton.InferInput(column, [len(values)], "BYTES")
                    tensor.set_data_from_numpy(values.astype(object))
                else:
                    tensor = triton.InferInput(column, [len(values)], "FP32")
                    tensor.set_data_from_numpy(values.astype(np.float32))
                inputs.append(tensor)
            result = client.infer(name, inputs)
            np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-4)
            client.close()


def test_a_lightgbm_model_registers_with_tree_parity(project: Project) -> None:
    import lightgbm

    schema = project.datasets.schema("breast_cancer@1")
    parts = project.datasets.load_split("breast_cancer@1")
    features = list(schema.features)
    x = matrix(parts["train"], features).numpy()
    y = np.asarray(parts["train"].column("target").to_pylist())
    booster = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1, random_state=0)
    version = register_model(booster.fit(x, y), data="breast_cancer@1", name="gbm", project=project)
    assert version.lineage["imported"]["format"] == "lightgbm"
    assert version.metrics["parity"]["max_abs_diff"] <= 1e-5
    assert version.metrics["test"]["accuracy"] > 0.9
    test = parts["test"]
    np.testing.assert_allclose(
        mlcycle.load("gbm@1", project=project).predict_proba(test),
        booster.predict_proba(matrix(test, features).numpy()),
        atol=1e-5,
    )


def test_a_regressor_fitted_on_a_frame_takes_the_columns_in_the_frames_order(
    project: Project, tmp_path: Path
) -> None:
    from sklearn.linear_model import Ridge

    project.datasets.add("sklearn:diabetes")
    schema = project.datasets.schema("diabetes@1")
    parts = project.datasets.load_split("diabetes@1")
    backwards = list(reversed(schema.features))
    frame = parts["train"].to_pandas()
    ridge = Ridge(alpha=0.1).fit(frame[backwards], frame["target"])
    version = register_model(ridge, data="diabetes@1", name="sugar", project=project)
    mapping = version.lineage["imported"]["mapping"]
    assert f"the order the model was fitted with ({', '.join(backwards)})" in mapping
    assert version.metrics["parity"]["max_rel_diff"] <= 1e-5
    assert version.signature == implied_signature(project, "diabetes@1")
    test = parts["test"]
    np.testing.assert_allclose(
        mlcycle.load("sugar@1", project=project).predict(test).values,
        ridge.predict(test.to_pandas()[backwards]),
        rtol=1e-5,
    )
    assert version.metrics["test"]["rmse"] > 0


def test_a_run_registers_what_it_trained_only_when_it_names_its_dataset(
    project: Project, net: Net
) -> None:
    from mlcycle import ConflictError

    with (
        project.runs.start("no-data") as run,
        pytest.raises(ConflictError, match="names no dataset version: start it with"),
    ):
        run.register(net, name="orphan")
    with project.runs.start("mine", dataset="breast_cancer@1", params={"lr": 0.01}) as run:
        version = run.register(net, name="tracked", alias="challenger")
    assert version.run_id == run.id and version.lineage["run"] == run.id
    assert list(version.aliases) == ["challenger"]
    record = project.runs.get(run.id)
    assert record.status == "finished"
    assert record.summary["test"] == version.metrics["test"]
    assert "report.html" in record.artifacts  # training's evaluation report, for this run


def test_missing_categories_reach_the_pipeline_as_the_graph_gets_them(project: Project) -> None:
    from tests.registry.conftest import mixed_table

    project.datasets.add(mixed_table(), name="mixed", target="y")
    train = project.datasets.load_split("mixed@1")["train"].to_pandas()
    assert train["city"].isna().any() and train["income"].isna().any()
    columns = ColumnTransformer(
        [
            ("numbers", SimpleImputer(), ["income", "member"]),
            ("cities", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    model = Pipeline([("columns", columns), ("model", LogisticRegression())])
    model.fit(train.drop(columns=["y"]), train["y"])
    version = register_model(model, data="mixed@1", name="mixed", project=project)
    assert version.metrics["parity"]["max_abs_diff"] <= 1e-5
    rows = [{"income": 61.5, "city": None, "member": True}, {"income": None, "city": "lyon"}]
    served = mlcycle.load("mixed@1", project=project).predict_proba(
        [{"member": None, **row} for row in rows]
    )
    native = model.predict_proba(
        pd.DataFrame({"income": [61.5, np.nan], "city": ["", "lyon"], "member": [1.0, np.nan]})
    )
    np.testing.assert_allclose(served, native, atol=1e-5)


@pytest.mark.parametrize(
    ("data", "outputs", "kind"),
    [("diabetes@1", 1, "values"), ("breast_cancer@1", 1, "logit")],
)
def test_a_module_with_one_output_answers_values_or_the_second_class(
    project: Project, data: str, outputs: int, kind: str
) -> None:
    project.datasets.add("sklearn:diabetes")
    features = list(project.datasets.schema(data).features)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(len(features), outputs))
    module[0].weight.data.mul_(1e-3)  # small logits on unscaled columns
    version = register_model(module, data=data, name=f"one-{kind}", project=project)
    assert version.lineage["imported"]["notes"] == [f"the module's outputs are read as {kind}"]
    test = project.datasets.load_split(data)["test"]
    with torch.no_grad():
        raw = module(matrix(test, features)).reshape(-1)
    served = mlcycle.load(f"one-{kind}@1", project=project).predict(test)
    if kind == "values":
        assert served.values is not None
        np.testing.assert_allclose(served.values, raw.numpy(), rtol=1e-4, atol=1e-4)
    else:
        assert served.probabilities is not None
        np.testing.assert_allclose(
            served.probabilities[:, 1], torch.sigmoid(raw).numpy(), atol=1e-5
        )
