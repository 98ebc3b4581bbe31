"""``POST /explain`` over real HTTP: attributions that add up, off the prediction path, bounded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

# The first explanation starts the explain worker: on a loaded machine that takes longer
# than httpx's 5-second default, which is a wait, not a failure.
WAIT = 120

ROWS = [
    {"income": 71.0, "city": "paris", "member": True},
    {"income": 31.0, "city": "nice", "member": False},
]


def test_explanations_sum_to_the_change_from_the_baseline(serve: Callable[..., Any]) -> None:
    with serve() as (url, _):
        answer = httpx.post(
            f"{url}/explain", json={"records": ROWS, "permutations": 32}, timeout=WAIT
        )
        predicted = httpx.post(f"{url}/predict", json={"records": ROWS}, timeout=WAIT).json()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "loyalty" and body["permutations"] == 32
    for row, explained, label, probabilities in zip(
        ROWS,
        body["explanations"],
        predicted["labels"],
        predicted["probabilities"],
        strict=True,
    ):
        assert set(explained["attributions"]) == set(row)
        assert explained["target"] == label  # the predicted class, by default
        assert explained["output"] == pytest.approx(probabilities[label], abs=1e-6)
        total = sum(explained["attributions"].values())
        assert total == pytest.approx(explained["output"] - explained["base"], abs=1e-6)
    # the truth of mixed_table: income moves the answer most for a far-from-average row
    first = body["explanations"][0]["attributions"]
    assert abs(first["income"]) > abs(first["member"])


def test_a_target_class_is_explained_for_every_row(serve: Callable[..., Any]) -> None:
    with serve() as (url, _):
        body = httpx.post(
            f"{url}/explain", json={"records": ROWS, "target": "no"}, timeout=WAIT
        ).json()
    assert [e["target"] for e in body["explanations"]] == ["no", "no"]


@pytest.mark.parametrize(
    ("request_body", "status", "says"),
    [
        ({"rows": ROWS}, 400, 'expected {"records"'),
        ({"records": []}, 422, "records: 0 rows; /explain takes 1 to 16"),
        ({"records": ROWS * 9}, 422, "records: 18 rows"),
        ({"records": ROWS, "permutations": 1}, 422, "permutations: 1; expected an integer"),
        ({"records": ROWS, "target": "maybe"}, 422, "'maybe' is not one of the classes"),
        ({"records": [{"income": "x", "city": "paris", "member": True}]}, 422, "income"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(
    serve: Callable[..., Any], request_body: dict[str, Any], status: int, says: str
) -> None:
    with serve() as (url, _):
        answer = httpx.post(f"{url}/explain", json=request_body, timeout=WAIT)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


def test_explanations_past_the_limit_are_turned_away_while_predictions_go_on(
    serve: Callable[..., Any],
) -> None:
    """One explaining worker and one waiting: a third concurrent request gets 429 at once."""
    heavy = {"records": ROWS * 8, "permutations": 256}
    with serve(explain_concurrency=1) as (url, app):
        gate = threading.Event()
        explainer = next(r for r in app.routes if r.path == "/explain").handler.__self__
        work = explainer._work

        async def held(*args: Any) -> Any:  # the workers stay busy until the gate opens
            await asyncio.to_thread(gate.wait, 60)
            return await work(*args)

        explainer._work = held
        answers: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: answers.append(
                    httpx.post(f"{url}/explain", json=heavy, timeout=120).status_code
                )
            )
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        while explainer.inside < 2:
            threading.Event().wait(0.01)
        refused = httpx.post(f"{url}/explain", json={"records": ROWS}, timeout=WAIT)
        predicted = httpx.post(
            f"{url}/predict", json={"records": ROWS}, timeout=WAIT
        )  # not held up
        gate.set()
        for t in threads:
            t.join(120)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "2 explanations are running or waiting (limit 2)" in refused.json()["error"]
    assert predicted.status_code == 200
    assert sorted(answers) == [200, 200]


def _v2_body(**parameters: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "income", "shape": [2, 1], "datatype": "FP64", "data": [71.0, 31.0]},
            {"name": "city", "shape": [2, 1], "datatype": "BYTES", "data": ["paris", "nice"]},
            {"name": "member", "shape": [2, 1], "datatype": "BOOL", "data": [True, False]},
        ],
        "parameters": parameters,
    }


def test_a_v2_request_asks_for_explanations_with_a_parameter(serve: Callable[..., Any]) -> None:
    with serve() as (url, _):
        plain = httpx.post(f"{url}/v2/models/loyalty/infer", json=_v2_body(), timeout=WAIT)
        answer = httpx.post(
            f"{url}/v2/models/loyalty/infer",
            json=_v2_body(explain=True, explain_target="yes", explain_permutations=8),
            timeout=WAIT,
        )
        bad = httpx.post(
            f"{url}/v2/models/loyalty/infer",
            json=_v2_body(explain=True, explain_permutations=0),
            timeout=WAIT,
        )
    assert plain.status_code == 200 and "explanations" not in plain.json().get("parameters", {})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    explained = body["parameters"]["explanations"]
    assert [e["target"] for e in explained] == ["yes", "yes"]
    probabilities = next(o for o in body["outputs"] if o["name"] == "probabilities")["data"]
    for i, e in enumerate(explained):
        assert e["output"] == pytest.approx(probabilities[2 * i + 1], abs=1e-6)  # yes: column 1
        total = sum(e["attributions"].values())
        assert total == pytest.approx(e["output"] - e["base"], abs=1e-6)
    assert bad.status_code == 422 and "explain_permutations: 0" in bad.json()["error"]
