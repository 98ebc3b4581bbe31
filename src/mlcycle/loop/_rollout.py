"""Rollout: how much traffic the challenger gets, and how it is doing live.

The traffic split is a record in the store (:class:`~mlcycle.store.Traffic`:
the challenger's version, the mode, ``canary``, ``shadow`` or ``off``, and the
percentage), written by the loop with :func:`~mlcycle.store.set_traffic`; a
server started without an explicit ``--canary``/``--shadow`` follows the
newest one, as it follows aliases. Live figures come from the
prediction log since the step began, per version: requests (distinct
requests, whatever rows each carried; rows are counted apart), failed
requests (logged by the server with source ``error``), latency per request
(judged only once both versions answered ``min_requests``), and accuracy on
the rows whose labels came back. For shadow traffic the challenger's mirrored
answers are compared with the champion's for the same requests.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.monitor._performance import join_feedback
from mlcycle.predictions import PredictionLog
from mlcycle.store import Traffic, TrafficMode, read_traffic, set_traffic

if TYPE_CHECKING:
    from mlcycle.project import Project
    from mlcycle.spec import RolloutSpec

__all__ = ["Traffic", "judge_step", "live_figures", "read_traffic", "set_traffic"]

_MIN_LABELS = 30
# Latency is judged on the median (a new version's first calls are slow while its
# session warms up, which a p95 of a few dozen requests would mistake for a
# regression), with this much slack: sub-millisecond differences are noise.
LATENCY_SLACK_MS = 1.0


def _requests(rows: pa.Table) -> pa.Table:
    """One row per request (``request_id``, ``latency_ms``): the rows of a request share both.

    A server logs the rows of a multi-row request as ``{request_id}:{row}``; a
    request is one answer and one latency, however many rows it carried.
    """
    if rows.num_rows == 0:
        return pa.table({"request_id": pa.array([], pa.string()), "latency_ms": []})
    base = pc.replace_substring_regex(rows.column("request_id"), r":\d+$", "")
    keyed = pa.table({"request_id": base, "latency_ms": rows.column("latency_ms")})
    grouped = keyed.group_by("request_id").aggregate([("latency_ms", "max")])
    return grouped.rename_columns(["request_id", "latency_ms"])


def _version_figures(
    rows: pa.Table, labelled: pa.Table, version: int, source: str
) -> dict[str, Any]:
    mine = rows.filter(
        pc.and_(pc.equal(rows.column("version"), version), pc.equal(rows.column("source"), source))
    )
    per_request = _requests(mine)
    latency = (
        per_request.column("latency_ms").to_numpy(zero_copy_only=False)
        if per_request.num_rows
        else None
    )
    failed = _requests(
        rows.filter(
            pc.and_(
                pc.equal(rows.column("version"), version), pc.equal(rows.column("source"), "error")
            )
        )
    ).num_rows
    out: dict[str, Any] = {
        "requests": per_request.num_rows,
        "rows": mine.num_rows,
        "errors": failed,
        "error_rate": failed / max(per_request.num_rows + failed, 1),
        "latency_p50_ms": None if latency is None else float(np.percentile(latency, 50)),
        "latency_p95_ms": None if latency is None else float(np.percentile(latency, 95)),
        "labelled": 0,
        "accuracy": None,
    }
    if labelled.num_rows and "label" in labelled.column_names:
        own = labelled.filter(
            pc.and_(
                pc.equal(labelled.column("version"), version),
                pc.equal(labelled.column("source"), source),
            )
        )
        out["labelled"] = own.num_rows
        if own.num_rows:
            hits = pc.equal(
                own.column("label").cast(pa.string()), own.column("actual").cast(pa.string())
            )
            out["accuracy"] = float(pc.mean(hits.cast(pa.float64())).as_py())
    return out


def live_figures(
    project: Project, model: str, champion: int, challenger: int, since: datetime, mode: TrafficMode
) -> dict[str, Any]:
    """Per-version live figures from the prediction log since ``since``."""
    log = PredictionLog(project.root / ".mlcycle" / "log")
    try:
        rows = log.read(model, since=since)
        feedback = log.read_feedback(since=since)
    finally:
        log.close()
    empty = {"champion": {"requests": 0}, "challenger": {"requests": 0}, "agreement": None}
    if rows.num_rows == 0:
        return empty
    labelled = pa.table({})
    if feedback.num_rows and rows.num_rows:
        # one label per request id; shadow rows share the champion's request ids
        for source in ("serve", "shadow"):
            part = join_feedback(rows.filter(pc.equal(rows.column("source"), source)), feedback)
            labelled = part if labelled.num_rows == 0 else pa.concat_tables([labelled, part])
    challenger_source = "shadow" if mode == "shadow" else "serve"
    figures: dict[str, Any] = {
        "champion": _version_figures(rows, labelled, champion, "serve"),
        "challenger": _version_figures(rows, labelled, challenger, challenger_source),
        "agreement": None,
    }
    if mode == "shadow" and "label" in rows.column_names:
        served = rows.filter(pc.equal(rows.column("source"), "serve"))
        shadow = rows.filter(pc.equal(rows.column("source"), "shadow"))
        pairs = served.select(["request_id", "label"]).join(
            shadow.select(["request_id", "label"]).rename_columns(["request_id", "shadow_label"]),
            "request_id",
        )
        if pairs.num_rows:
            same = pc.equal(pairs.column("label"), pairs.column("shadow_label"))
            figures["agreement"] = float(pc.mean(same.cast(pa.float64())).as_py())
    return figures


def judge_step(
    figures: dict[str, Any], spec: RolloutSpec, *, elapsed_s: float
) -> tuple[Literal["wait", "pass", "fail"], list[str]]:
    """Is the challenger fit for more traffic? ``fail`` rolls back; ``wait`` bakes on."""
    champ, chall = figures["champion"], figures["challenger"]
    reasons: list[str] = []
    if chall.get("error_rate", 0.0) > spec.max_error_rate and chall.get("errors", 0) > 0:
        reasons.append(
            f"challenger error rate {chall['error_rate']:.2%} > {spec.max_error_rate:.2%}"
        )
    p50_champ, p50_chall = champ.get("latency_p50_ms"), chall.get("latency_p50_ms")
    p95_champ, p95_chall = champ.get("latency_p95_ms"), chall.get("latency_p95_ms")
    if (
        p50_champ
        and p50_chall
        and chall["requests"] >= max(spec.min_requests, 1)
        and champ.get("requests", 0) >= max(spec.min_requests, 1)
        and p50_chall > spec.max_latency_ratio * p50_champ + LATENCY_SLACK_MS
    ):
        reasons.append(
            f"challenger median latency {p50_chall:.2f} ms > {spec.max_latency_ratio}x the "
            f"champion's {p50_champ:.2f} ms (+{LATENCY_SLACK_MS:g} ms)"
        )
    acc_champ, acc_chall = champ.get("accuracy"), chall.get("accuracy")
    if (
        acc_champ is not None
        and acc_chall is not None
        and champ["labelled"] >= _MIN_LABELS
        and chall["labelled"] >= _MIN_LABELS
        and acc_champ - acc_chall > spec.max_accuracy_drop
    ):
        reasons.append(
            f"challenger live accuracy {acc_chall:.3f} is more than {spec.max_accuracy_drop} "
            f"below the champion's {acc_champ:.3f}"
        )
    if reasons:
        return "fail", reasons
    if chall.get("requests", 0) < spec.min_requests or elapsed_s < spec.bake_s:
        if elapsed_s >= spec.timeout_s:
            return "fail", [
                f"only {chall.get('requests', 0)} challenger requests in {elapsed_s:.0f} s "
                f"(needs {spec.min_requests}): the rollout timed out"
            ]
        return "wait", [
            f"baking: {chall.get('requests', 0)}/{spec.min_requests} requests, "
            f"{elapsed_s:.0f}/{spec.bake_s:.0f} s"
        ]
    return "pass", [
        f"{chall['requests']} challenger requests ({chall.get('rows', 0)} rows) over "
        f"{elapsed_s:.0f} s: errors "
        f"{chall.get('error_rate', 0):.2%}, median latency {p50_chall or 0:.2f} ms vs "
        f"{p50_champ or 0:.2f} ms (p95 {p95_chall or 0:.2f} vs {p95_champ or 0:.2f})"
        + ("" if acc_chall is None else f", accuracy {acc_chall:.3f} vs {acc_champ or 0:.3f}")
    ]
