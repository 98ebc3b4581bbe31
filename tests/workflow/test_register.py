"""Registration: verified ONNX export, files and hashes, safe loading without torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import mlcycle
from mlcycle import (
    ConflictError,
    DataError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    ParityError,
    Project,
)
from mlcycle.registry import load
from mlcycle.train import check_parity, encode, load_model, predict
from mlcycle.train._features import FeatureLayout
from mlcycle.workflow import _register, register

EXPECTED_FILES = {
    "model.onnx",
    "weights.safetensors",
    "model.json",
    "signature.json",
    "metrics.json",
    "lineage.json",
    "card.md",
    "card.html",
    "reference.parquet",
    "ood.json",
}


@pytest.mark.parametrize("kind", ["iris", "mixed", "digits", "diabetes"])
def test_every_kind_of_model_registers_with_a_passing_parity_check(
    trained: tuple[Project, dict[str, str]], kind: str
) -> None:
    project, runs = trained
    version = register(project, runs[kind], f"m-{kind}")
    assert set(version.files) == EXPECTED_FILES
    parity = version.metrics["parity"]
    assert parity["rows"] > 0 and parity["max_abs_diff"] <= 1e-4
    for sha in version.files.values():
        project.artifacts.verify(sha)
    run = project.runs.get(runs[kind])
    assert version.lineage["run"] == run.id
    assert version.lineage["dataset"] == run.params["dataset"]
    assert version.metrics["test"] == run.summary["test"]
    # The registry model answers as the PyTorch model does on the test rows.
    model, config = load_model(project, run.id)
    layout = FeatureLayout.from_dict(config["layout"])
    test = project.datasets.load_split(run.params["dataset"])["test"]
    expected = predict(model, encode(test, layout), model.target_mean.device).numpy()
    got = load(version.ref, project=project).predict(test)
    if kind == "diabetes":
        assert got.values is not None
        np.testing.assert_allclose(got.values, expected, rtol=1e-5, atol=1e-3)
    else:
        assert got.probabilities is not None and got.labels is not None
        np.testing.assert_allclose(got.probabilities, expected, atol=1e-5)
        assert list(got.labels) == [config["classes"][i] for i in expected.argmax(1)]


def test_the_signature_describes_raw_columns(trained: tuple[Project, dict[str, str]]) -> None:
    project, runs = trained
    version = register(project, runs["mixed"], "sig-mixed")
    inputs = {spec["name"]: spec for spec in version.signature["inputs"]}
    assert set(inputs) == {"income", "city", "member"}
    assert inputs["income"]["kind"] == "numeric" and inputs["income"]["dtype"] == "float32"
    low, high = inputs["income"]["range"]
    assert low < 50 < high
    assert inputs["city"]["categories"] == ["lyon", "nice", "paris"]
    assert inputs["member"]["kind"] == "boolean"
    assert version.signature["classes"] == ["no", "yes"]
    assert [o["name"] for o in version.signature["outputs"]] == ["probabilities", "label"]


def test_missing_values_and_unseen_categories_are_taken(
    trained: tuple[Project, dict[str, str]],
) -> None:
    project, runs = trained
    version = register(project, runs["mixed"], "gaps")
    model = load(version.ref, project=project)
    rows = [
        {"income": None, "city": "tokyo", "member": True},
        {"income": "61.5", "city": None, "member": "false"},
        {"income": float("nan"), "city": "paris", "member": None},
    ]
    result = model.predict(rows)
    assert result.probabilities is not None
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert result.labels is not None and set(result.labels) <= {"no", "yes"}
    records = result.to_records()
    assert set(records[0]["probabilities"]) == {"no", "yes"}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"income": 1.0, "city": "paris"}], "missing input column 'member'"),
        (
            [{"income": 1.0, "city": "paris", "member": True, "zip": "75001"}],
            "unexpected column 'zip'",
        ),
        (
            [{"income": "abc", "city": "paris", "member": True}],
            "column 'income': value 'abc' at row 0 is not a number",
        ),
        (
            [{"income": 1.0, "city": "paris", "member": "maybe"}],
            "column 'member': value 'maybe' at row 0 is not a boolean",
        ),
        ([], "no rows to predict"),
        (
            [
                {"income": [], "city": "paris", "member": True},
                {"income": 1.0, "city": None, "member": None},
            ],
            "column 'income': value [] at row 0 is not a number",
        ),
        (
            [{"income": 1.0, "city": ["a"], "member": True}],
            "column 'city': value ['a'] at row 0 is not a category",
        ),
        (
            [{"income": 10**400, "city": "a", "member": True}],
            "column 'income': value at row 0 is too large",
        ),
        ("income,city", "cannot predict on a str"),
    ],
)
def test_bad_inputs_name_the_column(
    trained: tuple[Project, dict[str, str]], rows: object, message: str
) -> None:
    project, runs = trained
    model = load(register(project, runs["mixed"], "validate").ref, project=project)
    with pytest.raises(DataError) as caught:
        model.predict(rows)
    assert str(caught.value).startswith(message)


def test_images_are_checked_and_flat_rows_reshaped(trained: tuple[Project, dict[str, str]]) -> None:
    project, runs = trained
    model = load(register(project, runs["digits"], "digits-cnn").ref, project=project)
    images = np.asarray(
        project.datasets.load("digits").column("image").slice(0, 4).to_pylist(), dtype=np.float32
    )
    flat = model.predict({"image": images}).labels
    square = model.predict(images.reshape(4, 8, 8)).labels
    assert flat is not None and square is not None and list(flat) == list(square)
    with pytest.raises(
        DataError, match=r"column 'image': images of shape \[10\], expected \[8, 8\]"
    ):
        model.predict({"image": np.zeros((2, 10), dtype=np.float32)})
    bad = images.copy()
    bad[1, 3] = np.nan
    with pytest.raises(DataError, match="image at row 1 holds NaN"):
        model.predict({"image": bad})


def test_a_tampered_file_is_refused_on_load(trained: tuple[Project, dict[str, str]]) -> None:
    project, runs = trained
    version = register(project, runs["iris"], "tamper")
    record = project.store.get_artifact(version.files["signature.json"])
    path = Path(record.uri)
    original = path.read_bytes()
    try:
        path.write_bytes(original.replace(b"float32", b"float64", 1))
        with pytest.raises(IntegrityError, match=f"expected sha256 {record.sha256}"):
            mlcycle.load(version.ref, project=project)
    finally:
        path.write_bytes(original)
    assert mlcycle.load(version.ref, project=project).predict_proba(
        project.datasets.load("iris").slice(0, 2)
    ).shape == (2, 3)


def test_loading_and_predicting_never_import_torch(trained: tuple[Project, dict[str, str]]) -> None:
    project, runs = trained
    version = register(project, runs["iris"], "notorch", alias="champion")
    code = (
        "import sys, mlcycle\n"
        "m = mlcycle.load('notorch@champion')\n"
        "p = m.predict([{'sepal_length_cm': 5.1, 'sepal_width_cm': 3.5, "
        "'petal_length_cm': 1.4, 'petal_width_cm': 0.2}])\n"
        "print(p.labels[0], 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project.root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    label, torch_loaded = done.stdout.split()
    assert label == "setosa" and torch_loaded == "False"
    assert version.aliases == ("champion",)


def test_parity_failure_registers_nothing(
    trained: tuple[Project, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, runs = trained
    real_export = _register.export_onnx

    def sabotaged(model, layout, classes, task):  # type: ignore[no-untyped-def]
        with_noise = {k: v.clone() for k, v in model.state_dict().items()}
        for key, value in with_noise.items():
            if key.startswith("body.") and key.endswith("weight"):
                value.add_(0.5)
        import copy

        other = copy.deepcopy(model)
        other.load_state_dict(with_noise)
        return real_export(other, layout, classes, task)

    monkeypatch.setattr(_register, "export_onnx", sabotaged)
    with pytest.raises(
        ParityError, match=r"probabilities differ by up to .* at test row \d+, class"
    ):
        register(project, runs["iris"], "never")
    assert all(m.name != "never" for m in project.store.registry.list_models())


def _artifact_count(project: Project) -> int:
    from sqlalchemy import text

    with project.store.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM artifacts")).scalar_one())


@pytest.mark.parametrize(
    ("name", "alias", "refused"),
    [
        ("fresh", "latest", "alias 'latest'"),
        ("fresh", "7", "alias '7'"),
        ("fresh", "champion\n", "alias 'champion\\n'"),
        ("nl\n", None, "model name 'nl\\n'"),
        ("..", "champion", "model name '..'"),
    ],
)
def test_a_bad_name_or_alias_is_refused_before_anything_is_exported(
    trained: tuple[Project, dict[str, str]], name: str, alias: str | None, refused: str
) -> None:
    project, runs = trained
    before = _artifact_count(project)
    with pytest.raises(InvalidNameError, match=f"^{re.escape(refused)}: expected "):
        register(project, runs["iris"], name, alias=alias)
    assert _artifact_count(project) == before  # no graph, card or reference was stored
    with pytest.raises(NotFoundError, match="is not registered"):
        project.store.registry.get("fresh")


def test_a_version_and_its_alias_are_written_together(
    trained: tuple[Project, dict[str, str]],
) -> None:
    project, runs = trained
    version = register(project, runs["iris"], "together", alias="champion", reason="first")
    assert (version.ref, version.aliases) == ("together@1", ("champion",))
    events = project.store.registry.history("together")
    assert [(e.action, e.details.get("version", e.details.get("to"))) for e in events] == [
        ("model.registered", 1),
        ("alias.moved", 1),
    ]
    assert events[1].reason == "first"


def test_check_parity_reports_where_outputs_differ(trained: tuple[Project, dict[str, str]]) -> None:
    project, runs = trained
    version = register(project, runs["iris"], "parity")
    model = load(version.ref, project=project)
    test = project.datasets.load_split("iris@1")["test"]
    reference = model.predict_proba(test).copy()
    assert check_parity(reference, model, test)["labels_identical"] is True
    reference[3, 1] += 0.01
    with pytest.raises(
        ParityError, match=r"differ by up to 0.01 .* at test row 3, class 'versicolor'"
    ):
        check_parity(reference, model, test)


def test_only_finished_runs_register(trained: tuple[Project, dict[str, str]]) -> None:
    project, _ = trained
    with (
        project.runs.start("unfinished") as run,
        pytest.raises(ConflictError, match="is running: only a finished run can be registered"),
    ):
        register(project, run.id, "nope")


def test_model_card_and_metrics_files(trained: tuple[Project, dict[str, str]]) -> None:
    project, runs = trained
    version = register(project, runs["mixed"], "carded", description="Scores loyalty offers.")
    card = project.artifacts.read_bytes(version.files["card.md"]).decode()
    for section in (
        "Intended use",
        "Training data",
        "Metrics",
        "Limitations",
        "Fairness",
        "Robustness",
    ):
        assert f"## {section}" in card
    assert "Scores loyalty offers." in card and "95% CI" in card and "Not yet audited" in card
    html = project.artifacts.read_bytes(version.files["card.html"]).decode()
    assert "<h2>Metrics</h2>" in html and "<script" not in html
    metrics = json.loads(project.artifacts.read_bytes(version.files["metrics.json"]))
    assert metrics["test"]["accuracy"] == version.metrics["test"]["accuracy"]
    lineage = json.loads(project.artifacts.read_bytes(version.files["lineage.json"]))
    assert lineage["packages"]["torch"].startswith("2.13") and len(lineage["spec_sha256"]) == 64


def test_arrow_and_pandas_inputs_agree(trained: tuple[Project, dict[str, str]]) -> None:
    project, runs = trained
    model = load(register(project, runs["iris"], "frames").ref, project=project)
    table = project.datasets.load("iris").slice(0, 20)
    frame = table.to_pandas()
    features = table.drop_columns(["target"])
    a = model.predict_proba(table)
    b = model.predict_proba(frame)
    c = model.predict_proba(features.to_pylist())
    d = model.predict_proba(np.column_stack([features.column(i).to_numpy() for i in range(4)]))
    for other in (b, c, d):
        np.testing.assert_allclose(a, other, atol=1e-6)
    assert isinstance(features, pa.Table)
