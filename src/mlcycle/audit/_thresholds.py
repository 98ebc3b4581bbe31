"""Fairlearn's group thresholds, inside the ONNX graph: the rule travels with the model.

Fairlearn's ``ThresholdOptimizer`` decides per group with a *randomized*
rule: with probability ``p0`` the score is compared with ``operation0``
(``> t0`` or ``< t0``), else with ``operation1``; for equalized odds, with
probability ``p_ignore`` a constant answer replaces the draw. Its
``_pmf_predict`` gives each row's probability of a positive answer and its
``predict`` draws from it with a ``RandomState``.

:func:`wrap_thresholds` builds a graph that takes the parent's inputs plus
the sensitive column (a string input the inner model never reads), runs the
parent unchanged, and on its positive-class probability (the *score*)
computes, in float64:

- ``probabilities``: ``[1 - q, q]`` in the parent's class order, where ``q``
  is exactly Fairlearn's probability of a positive answer for the row's group
  (``_pmf_predict``); these are the rule's probabilities, not the inner
  model's any more.
- ``label``: the positive class when ``q >= u``, else the other one, where
  ``u`` is a pseudo-uniform number in [0, 1) made from the row's own score
  and the ``seed`` (``frac(sin(12.9898 s + 78.233 seed + 0.5) * 43758.5453)``,
  a classic hash). So the label is a faithful draw of the randomized rule
  (the share of positive answers in a group is the mean of ``q``), yet it is
  deterministic: the same row gets the same answer in any batch, on any
  machine, and rows whose ``q`` is 0 or 1 (every row outside the narrow
  band between a group's two thresholds) get exactly Fairlearn's answer.

A group the optimizer never saw (or a missing value) keeps the parent's
probabilities and label: no rule was fitted for it, and Fairlearn's own
answer there (always negative) would deny silently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.base import BaseEstimator

from mlcycle.audit._parent import ParentVersion, model_inputs
from mlcycle.errors import MlcycleError
from mlcycle.registry import Predictor

__all__ = [
    "GroupRule",
    "check_threshold_graph",
    "fit_thresholds",
    "hash_uniform",
    "rules_of",
    "wrap_thresholds",
]

PMF_ATOL = 1e-6  # the graph against Fairlearn's probabilities (float32 outputs)

HASH = (12.9898, 78.233, 43758.5453)
PARENT = "parent/"


@dataclass(frozen=True)
class GroupRule:
    """One group's randomized threshold rule (Fairlearn's interpolation entry)."""

    group: str
    p0: float
    greater0: bool  # operation0 is ``score > t0`` (else ``score < t0``)
    t0: float
    p1: float
    greater1: bool
    t1: float
    p_ignore: float = 0.0
    constant: float = 0.0

    def positive_probability(self, scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``q`` for scores of this group, as Fairlearn's ``_pmf_predict`` computes it."""
        s = np.asarray(scores, dtype=np.float64)
        op0 = (s > self.t0) if self.greater0 else (s < self.t0)
        op1 = (s > self.t1) if self.greater1 else (s < self.t1)
        q = self.p0 * op0 + self.p1 * op1
        return self.p_ignore * self.constant + (1 - self.p_ignore) * q

    def to_dict(self) -> dict[str, Any]:
        def number(value: float) -> float | str:
            return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")

        return {
            "group": self.group,
            "p0": self.p0,
            "operation0": f"{'>' if self.greater0 else '<'}{number(self.t0)}",
            "p1": self.p1,
            "operation1": f"{'>' if self.greater1 else '<'}{number(self.t1)}",
            "p_ignore": self.p_ignore,
            "constant": self.constant,
        }


def rules_of(optimizer: Any) -> list[GroupRule]:
    """The fitted ``ThresholdOptimizer``'s rule per group, in a stable (sorted) order."""
    rules = []
    for group, entry in optimizer.interpolated_thresholder_.interpolation_dict.items():
        rules.append(
            GroupRule(
                group=str(group),
                p0=float(entry.p0),
                greater0=entry.operation0.operator == ">",
                t0=float(entry.operation0.threshold),
                p1=float(entry.p1),
                greater1=entry.operation1.operator == ">",
                t1=float(entry.operation1.threshold),
                p_ignore=float(entry.get("p_ignore", 0.0)),
                constant=float(entry.get("prediction_constant", 0.0)),
            )
        )
    return sorted(rules, key=lambda r: r.group)


def hash_uniform(scores: np.ndarray[Any, Any], seed: int) -> np.ndarray[Any, Any]:
    """The graph's pseudo-uniform ``u`` of each score, in numpy (the same float64 formula)."""
    a, b, c = HASH
    x = np.sin(np.asarray(scores, dtype=np.float64) * a + (seed * b + 0.5)) * c
    return np.asarray(x - np.floor(x))


def _rename_outputs(model: onnx.ModelProto, names: Mapping[str, str]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        for i, name in enumerate(node.output):
            if name in names:
                node.output[i] = names[name]
        for i, name in enumerate(node.input):
            if name in names:
                node.input[i] = names[name]
    for info in (*out.graph.output, *out.graph.value_info):
        if info.name in names:
            info.name = names[info.name]
    return out


def _const(name: str, values: Sequence[float] | Sequence[int], dtype: Any) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def wrap_thresholds(
    parent_onnx: bytes,
    *,
    sensitive: str,
    rules: Sequence[GroupRule],
    classes: Sequence[str],
    positive: int,
    seed: int,
    add_input: bool = True,
) -> bytes:
    """The parent's graph with ``rules`` applied to its score, taking ``sensitive`` as an input.

    ``positive`` is the index of the positive class in ``classes`` (a binary
    model); the score is the parent's probability of that class. ``add_input``
    False: the parent already takes the sensitive column (as a category).
    """
    if len(classes) != 2:
        raise ValueError("group thresholds apply to binary classifiers")
    parent = onnx.load_from_string(parent_onnx)
    inner = _rename_outputs(
        parent, {"probabilities": PARENT + "probabilities", "label": PARENT + "label"}
    )
    groups = [r.group for r in rules]
    # Per-group tables; Gather at -1 (an unseen group) reads the last entry, a placeholder
    # that the ``known`` mask replaces with the parent's own answer.
    pad = [*rules, rules[0]]
    tables = {
        "p0": [r.p0 for r in pad],
        "t0": [r.t0 for r in pad],
        "g0": [1.0 if r.greater0 else 0.0 for r in pad],
        "p1": [r.p1 for r in pad],
        "t1": [r.t1 for r in pad],
        "g1": [1.0 if r.greater1 else 0.0 for r in pad],
        "pi": [r.p_ignore for r in pad],
        "pc": [r.constant for r in pad],
    }
    a, b, c = HASH
    initializers = [_const(f"rule/{k}", v, np.float64) for k, v in tables.items()]
    initializers += [
        _const("rule/positive", [positive], np.int64),
        _const("rule/one", [1.0], np.float64),
        _const("rule/minus_one", [-1], np.int64),
        _const("rule/hash_a", [a], np.float64),
        _const("rule/hash_b", [seed * b + 0.5], np.float64),
        _const("rule/hash_c", [c], np.float64),
        _const("rule/axis1", [1], np.int64),
        numpy_helper.from_array(np.asarray(list(classes), dtype=object), "rule/classes"),
    ]
    P = "rule/"
    nodes = [
        # which group: its index in the tables, -1 when unknown
        helper.make_node(
            "LabelEncoder",
            [sensitive],
            [P + "group"],
            domain="ai.onnx.ml",
            keys_strings=groups,
            values_int64s=list(range(len(groups))),
            default_int64=-1,
        ),
        helper.make_node("Greater", [P + "group", P + "minus_one"], [P + "known"]),
        # the score: the parent's probability of the positive class, as float64
        helper.make_node("Gather", [PARENT + "probabilities", P + "positive"], [P + "s32"], axis=1),
        helper.make_node("Squeeze", [P + "s32", P + "axis1"], [P + "s32v"]),
        helper.make_node("Cast", [P + "s32v"], [P + "s"], to=TensorProto.DOUBLE),
    ]
    for k in tables:
        nodes.append(helper.make_node("Gather", [P + k, P + "group"], [P + "row_" + k], axis=0))
    for j in ("0", "1"):
        t, g = P + "row_t" + j, P + "row_g" + j
        nodes += [
            helper.make_node("Greater", [P + "s", t], [P + "gt" + j]),
            helper.make_node("Less", [P + "s", t], [P + "lt" + j]),
            helper.make_node("Cast", [P + "gt" + j], [P + "gtf" + j], to=TensorProto.DOUBLE),
            helper.make_node("Cast", [P + "lt" + j], [P + "ltf" + j], to=TensorProto.DOUBLE),
            helper.make_node("Cast", [g], [P + "isgt" + j], to=TensorProto.BOOL),
            helper.make_node(
                "Where", [P + "isgt" + j, P + "gtf" + j, P + "ltf" + j], [P + "opf" + j]
            ),
            helper.make_node("Mul", [P + "row_p" + j, P + "opf" + j], [P + "term" + j]),
        ]
    nodes += [
        helper.make_node("Add", [P + "term0", P + "term1"], [P + "drawn"]),
        helper.make_node("Mul", [P + "row_pi", P + "row_pc"], [P + "ignored"]),
        helper.make_node("Sub", [P + "one", P + "row_pi"], [P + "kept"]),
        helper.make_node("Mul", [P + "kept", P + "drawn"], [P + "kept_drawn"]),
        helper.make_node("Add", [P + "ignored", P + "kept_drawn"], [P + "q"]),
        # u: a deterministic pseudo-uniform number of the row's score and the seed
        helper.make_node("Mul", [P + "s", P + "hash_a"], [P + "h1"]),
        helper.make_node("Add", [P + "h1", P + "hash_b"], [P + "h2"]),
        helper.make_node("Sin", [P + "h2"], [P + "h3"]),
        helper.make_node("Mul", [P + "h3", P + "hash_c"], [P + "h4"]),
        helper.make_node("Floor", [P + "h4"], [P + "h5"]),
        helper.make_node("Sub", [P + "h4", P + "h5"], [P + "u"]),
        helper.make_node("GreaterOrEqual", [P + "q", P + "u"], [P + "yes"]),
        helper.make_node("Cast", [P + "yes"], [P + "yes_index"], to=TensorProto.INT64),
        # label: classes[positive] when yes, else the other class; negative = 1 - positive
        helper.make_node("Sub", [P + "one_i", P + "positive"], [P + "negative"]),
        helper.make_node("Where", [P + "yes", P + "positive", P + "negative"], [P + "label_index"]),
        helper.make_node("Gather", [P + "classes", P + "label_index"], [P + "rule_label"], axis=0),
        helper.make_node("Where", [P + "known", P + "rule_label", PARENT + "label"], ["label"]),
        # probabilities: [1 - q, q] in the class order
        helper.make_node("Sub", [P + "one", P + "q"], [P + "not_q"]),
        helper.make_node("Unsqueeze", [P + "q", P + "axis1"], [P + "q2"]),
        helper.make_node("Unsqueeze", [P + "not_q", P + "axis1"], [P + "not_q2"]),
        helper.make_node(
            "Concat",
            [P + "not_q2", P + "q2"] if positive == 1 else [P + "q2", P + "not_q2"],
            [P + "rule_p64"],
            axis=1,
        ),
        helper.make_node("Cast", [P + "rule_p64"], [P + "rule_p"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [P + "known", P + "axis1"], [P + "known2"]),
        helper.make_node(
            "Where", [P + "known2", P + "rule_p", PARENT + "probabilities"], ["probabilities"]
        ),
    ]
    initializers.append(_const("rule/one_i", [1], np.int64))
    graph = inner.graph
    # The rule's nodes read the parent's outputs and the new input; the parent's nodes stay.
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    if add_input:
        graph.input.append(helper.make_tensor_value_info(sensitive, TensorProto.STRING, [None]))
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("label", TensorProto.STRING, [None]),
        ]
    )
    graph.name = f"{graph.name or 'model'}+group_thresholds"
    onnx.checker.check_model(inner, full_check=True)
    return bytes(inner.SerializeToString())


# -- fitting Fairlearn's rule ----------------------------------------------------------------


class _Scores(BaseEstimator):  # type: ignore[misc]
    """The parent's score, already computed, as the estimator ThresholdOptimizer wraps."""

    def __init__(self) -> None:
        self.fitted_ = True  # nothing to fit: sklearn's check_is_fitted looks for a name_

    def fit(self, X: Any, y: Any) -> _Scores:
        return self

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        return np.asarray(X, dtype=np.float64)[:, 0]


def fit_thresholds(
    parent: ParentVersion,
    sensitive: str,
    constraint: str,
    eps: float | None,
    seed: int,
    objective: str = "accuracy_score",
) -> tuple[bytes, dict[str, Any], dict[str, Any], dict[str, Any], Any]:
    """The wrapped graph, its signature, params, details, and a Fairlearn predictor of test rows."""
    from fairlearn.postprocessing import ThresholdOptimizer  # type: ignore[import-untyped]

    base = Predictor(parent.files["model.onnx"], parent.signature, name=parent.record.ref)
    scores = {
        split: base.predict(model_inputs(parent.splits[split], parent.signature)).probabilities
        for split in ("validation", "test")
    }
    optimizer = ThresholdOptimizer(
        estimator=_Scores(),
        constraints=constraint,
        objective=objective,
        prefit=True,
        predict_method="predict",
        **({"tol": eps} if eps is not None else {}),
    )
    val_score = np.asarray(scores["validation"], dtype=np.float64)[:, parent.positive]
    optimizer.fit(
        val_score.reshape(-1, 1),
        parent.y["validation"],
        sensitive_features=parent.groups["validation"],
    )
    rules = rules_of(optimizer)
    inputs = [spec["name"] for spec in parent.signature["inputs"]]
    graph = wrap_thresholds(
        parent.files["model.onnx"],
        sensitive=sensitive,
        rules=rules,
        classes=parent.classes,
        positive=parent.positive,
        seed=seed,
        add_input=sensitive not in inputs,
    )
    signature = dict(parent.signature)
    if sensitive not in inputs:
        signature["inputs"] = [
            *parent.signature["inputs"],
            {
                "name": sensitive,
                "kind": "categorical",
                "dtype": "string",
                "shape": [-1],
                "nullable": True,
                "categories": [r.group for r in rules],
            },
        ]
    test_score = np.asarray(scores["test"], dtype=np.float64)[:, parent.positive]

    def fairlearn_pmf() -> np.ndarray[Any, Any]:
        pmf: np.ndarray[Any, Any] = optimizer._pmf_predict(
            test_score.reshape(-1, 1), sensitive_features=parent.groups["test"]
        )[:, 1]
        return pmf

    params: dict[str, Any] = {
        "constraint": constraint,
        "objective": objective,
        "fitted_on": "validation",
        "seed": seed,
        **({"tol": eps} if eps is not None else {}),
    }
    details = {"rules": [r.to_dict() for r in rules], "label_rule": "hash-draw"}
    return graph, signature, params, details, fairlearn_pmf


def check_threshold_graph(
    q: np.ndarray[Any, Any], yes: np.ndarray[Any, Any], pmf: np.ndarray[Any, Any], ref: str
) -> dict[str, Any]:
    """The embedded rule against Fairlearn's on the test rows: ``q`` and labels of the graph.

    Raises:
        MlcycleError: the graph's probabilities differ from Fairlearn's, or a
            label differs where Fairlearn's rule is deterministic (a bug, not bad input).
    """
    certain = (pmf == 0) | (pmf == 1)
    agree = yes[certain] == (pmf[certain] == 1)
    check = {
        "max_probability_difference": float(np.max(np.abs(q - pmf))) if len(q) else 0.0,
        "deterministic_rows": int(certain.sum()),
        "deterministic_rows_equal": int(agree.sum()),
        "randomized_rows": int((~certain).sum()),
        "expected_positive_share": float(pmf.mean()),
        "realised_positive_share": float(yes.mean()),
    }
    if check["max_probability_difference"] > PMF_ATOL or not agree.all():
        raise MlcycleError(
            f"mitigate: the graph of {ref} disagrees with Fairlearn's ThresholdOptimizer on the "
            f"test rows (probability off by {check['max_probability_difference']:.2e}, "
            f"{int((~agree).sum())} deterministic labels differ); nothing registered"
        )
    return check
