"""Id, timestamp and sensitive columns ride along every prediction path: never fed, logged.

A dataset with a customer id and a sensitive ``region`` beside the model's
inputs: the version's signature lists them as context, ``Predictor.predict``,
``/predict`` and batch scoring take rows that carry them (and the target),
the answers do not change, and the prediction log keeps them for fairness
over time and the loop. ``/predict`` names each row's id, and ``/feedback``
takes ``{"request_id", "row"}`` and says which labels matched an answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle import DataError, Project
from mlcycle.batch import score_file
from mlcycle.predictions import INPUT_PREFIX, PredictionLog, resolve_references
from mlcycle.registry import load, model_inputs, register
from mlcycle.serve import ServeSettings, create_app, serve_in_thread
from mlcycle.train import train
from tests.registry.conftest import mixed_table

INPUTS = ["income", "member", "city"]  # numbers first, as the signature orders them


def _table(n: int = 400, seed: int = 0) -> pa.Table:
    table = mixed_table(n, seed)
    rng = np.random.default_rng(seed + 1)
    ids = [f"c{seed}-{i:05d}" for i in range(n)]
    region = rng.choice(["north", "south"], n).tolist()
    return table.append_column("customer_id", pa.array(ids)).append_column(
        "region", pa.array(region)
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = Path(tmp_path_factory.mktemp("context")) / "proj"
    with Project.init(root, name="proj") as p:
        p.datasets.add(
            _table(),
            name="customers",
            target="y",
            roles={"customer_id": "id", "region": "sensitive"},
        )
        register(p, train(p, data="customers", overrides={"max_epochs": 5}).run_id, "churn")
        yield p


def test_the_signature_lists_the_context_columns(project: Project) -> None:
    predictor = load("churn@1", project=project)
    assert predictor.input_names == INPUTS
    assert predictor.signature["context"] == [
        {"name": "customer_id", "role": "id"},
        {"name": "region", "role": "sensitive"},
    ]


def test_predict_takes_rows_with_their_id_sensitive_and_target_columns(project: Project) -> None:
    predictor = load("churn@1", project=project)
    rows = _table(20, seed=5)
    bare = predictor.predict(rows.select(INPUTS))
    full = predictor.predict(rows)  # customer_id, region and y ride along
    assert np.array_equal(bare.labels, full.labels)
    assert np.allclose(bare.probabilities, full.probabilities)
    feeds = predictor.feeds(rows.to_pylist())
    assert feeds.context is not None and list(feeds.context) == ["customer_id", "region"]
    assert feeds.context["customer_id"][0] == "c5-00000"
    with pytest.raises(DataError, match="unexpected column 'nickname'"):
        predictor.predict([{**rows.slice(0, 1).to_pylist()[0], "nickname": "x"}])


def test_served_rows_keep_their_context_and_feedback_says_what_matched(project: Project) -> None:
    settings = ServeSettings(project=project.root, ref="churn@1", poll_s=0, log_flush_s=0.1)
    records = _table(3, seed=9).drop_columns(["y"]).to_pylist()
    records = [{k: None if v != v else v for k, v in r.items()} for r in records]  # NaN: null
    with serve_in_thread(create_app(settings)) as url:
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=30).json()
        rid = answer["request_id"]
        assert answer["row_ids"] == [f"{rid}:0", f"{rid}:1", f"{rid}:2"]
        single = httpx.post(f"{url}/predict", json={"records": records[:1]}, timeout=30).json()
        assert "row_ids" not in single  # one row: its id is the request's
        labels = [
            {"request_id": rid, "row": 0, "label": "yes"},
            {"request_id": f"{rid}:2", "label": "no"},
            {"request_id": single["request_id"], "label": "no"},
            {"request_id": "never-answered", "label": "no"},
        ]
        told = httpx.post(f"{url}/feedback", json={"labels": labels}, timeout=30).json()
        assert (told["accepted"], told["matched"], told["unmatched"]) == (4, 3, ["never-answered"])
        bad = httpx.post(
            f"{url}/feedback",
            json={"labels": [{"request_id": rid, "row": -1, "label": "no"}]},
            timeout=30,
        )
        assert bad.status_code == 422 and "row must be a row number" in bad.json()["error"]
    log = PredictionLog(project.root / ".mlcycle" / "log")
    logged = log.read("churn").to_pydict()
    feedback = log.read_feedback().to_pydict()
    log.close()
    at = logged["request_id"].index(f"{rid}:1")
    assert logged[INPUT_PREFIX + "customer_id"][at] == records[1]["customer_id"]
    assert logged[INPUT_PREFIX + "region"][at] == records[1]["region"]
    assert f"{rid}:0" in feedback["request_id"]


@pytest.mark.parametrize("how", ["copy", "reference"])
def test_batch_scoring_logs_the_context_columns(project: Project, tmp_path: Path, how: str) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(_table(50, seed=7), source)
    score_file("churn@1", source, tmp_path / "out.parquet", project=project, log_inputs=how)
    root = project.root / ".mlcycle" / "log"
    log = PredictionLog(root)
    batch = log.read("churn", source="batch")
    log.close()
    if how == "reference":  # read from the input through the reference, as monitoring does
        model = load("churn@1", project=project)
        batch = resolve_references(
            batch.slice(batch.num_rows - 50),
            root,
            model.input_names,
            lambda raw: model.feeds(model_inputs(raw, model.signature)),
            text=["region", "customer_id"],
        ).table
    region = batch.column(INPUT_PREFIX + "region").to_pylist()[-50:]
    assert region == _table(50, seed=7).column("region").to_pylist()
