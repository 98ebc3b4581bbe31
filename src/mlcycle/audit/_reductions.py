"""Our PyTorch training as a Fairlearn estimator, for the reductions approach.

Fairlearn's ``ExponentiatedGradient`` and ``GridSearch`` turn a fairness
constraint into a sequence of cost-sensitive problems: each asks the
estimator to ``fit(X, y, sample_weight=w)`` on relabelled rows with
weights. :class:`TorchEstimator` answers with :func:`mlcycle.train.fit` on
the parent run's own training spec and encoded training rows (weights become
the sampling probabilities of each epoch's rows, see ``fit``).

``X`` is a column of row numbers into those encoded rows, not the features:
Fairlearn only passes it through (to ``fit`` and ``predict``), and the
network needs the encoded inputs (one-hot categories, scaled numbers), not a
float matrix Fairlearn would build. ``y`` is 0/1 (1: the positive class).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnx.compose
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.base import BaseEstimator, ClassifierMixin

from mlcycle.audit._parent import ParentVersion
from mlcycle.audit._thresholds import HASH as _HASH
from mlcycle.errors import ConflictError, MlcycleError
from mlcycle.spec import TrainSpec
from mlcycle.train import (
    Encoded,
    FeatureLayout,
    FitResult,
    MlcycleNet,
    TrainData,
    build_model,
    fit,
    head_width,
    pick_device,
    predict,
)
from mlcycle.train._run import MODEL_CONFIG, MODEL_WEIGHTS, _prepare

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = [
    "Retrained",
    "TorchEstimator",
    "TrainingRows",
    "mixture_graph",
    "reduction_variant",
    "retrain",
]


@dataclass
class TrainingRows:
    """What every retraining shares: the spec, the encoded rows, how to build a fresh network."""

    spec: TrainSpec
    data: TrainData  # train rows (X's row numbers index them) and validation rows
    build: Any  # () -> a freshly initialised MlcycleNet (seeded by the spec)
    positive: int  # the index of the positive class
    device: torch.device
    fits: int = 0  # how many networks were trained (the cost of the reduction)

    def __deepcopy__(self, memo: dict[int, Any]) -> TrainingRows:
        return self  # shared by every copy Fairlearn makes of the estimator

    def rows(self, X: Any) -> np.ndarray[Any, Any]:
        index = np.asarray(X, dtype=np.float64).reshape(len(X), -1)[:, 0].astype(np.int64)
        return index

    def encoded(self, index: np.ndarray[Any, Any]) -> Encoded:
        x = self.data.train_x

        def take(a: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any] | None:
            return None if a is None else a[index]

        return replace(
            x, numeric=take(x.numeric), categorical=take(x.categorical), image=take(x.image)
        )


class TorchEstimator(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A binary classifier trained by mlcycle's loop; ``X`` holds training row numbers."""

    def __init__(self, rows: TrainingRows | None = None) -> None:
        self.rows = rows

    def __deepcopy__(self, memo: dict[int, Any]) -> TorchEstimator:
        out = TorchEstimator(self.rows)
        for name, value in self.__dict__.items():
            if name != "rows":
                setattr(out, name, copy.deepcopy(value, memo))
        return out

    def fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
    ) -> TorchEstimator:
        assert self.rows is not None
        rows = self.rows
        index = rows.rows(X)
        positive = np.asarray(y).astype(np.int64) == 1
        labels = np.where(positive, rows.positive, 1 - rows.positive).astype(np.int64)
        data = replace(rows.data, train_x=rows.encoded(index), train_y=labels)
        weights = None if sample_weight is None else np.array(sample_weight, dtype=np.float64)
        if weights is not None and weights.sum() <= 0:
            weights = None
        net: MlcycleNet = rows.build()
        self.result_: FitResult = fit(
            rows.spec, net, data, device=rows.device, sample_weight=weights
        )
        self.model_ = self.result_.model
        self.classes_ = np.array([0, 1])
        rows.fits += 1
        return self

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        assert self.rows is not None
        out = predict(self.model_, self.rows.encoded(self.rows.rows(X)), self.rows.device).numpy()
        p = out[:, self.rows.positive].astype(np.float64)
        return np.stack([1 - p, p], axis=1)

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        assert self.rows is not None
        out = predict(self.model_, self.rows.encoded(self.rows.rows(X)), self.rows.device).numpy()
        # the exported graph's rule: the most probable class
        labels: np.ndarray[Any, Any] = (out.argmax(axis=1) == self.rows.positive).astype(np.int64)
        return labels


@contextmanager
def _quiet_fairlearn() -> Iterator[None]:
    """Silence a pandas deprecation raised inside Fairlearn's moments (its code, not ours)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Setting (a value on a Series via|an item of)")
        yield


@dataclass
class Retrained:
    """What a reduction produced: its networks and their weights in the mix (one: weight 1)."""

    networks: list[TorchEstimator]
    weights: list[float]
    params: dict[str, Any]
    details: dict[str, Any]
    prepared: Any  # the parent run's prepared data (train._run._Prepared), its layout
    spec: TrainSpec
    run: Any  # the parent's training run record


def mixture_graph(
    graphs: Sequence[bytes],
    weights: Sequence[float],
    *,
    classes: Sequence[str],
    positive: int,
    seed: int,
) -> bytes:
    """One graph for Fairlearn's randomized mix of networks (``ExponentiatedGradient``).

    Every network (same inputs) runs on the same feeds; ``q``, the probability
    that the mix answers the positive class, is the sum of the weights of the
    networks whose own label is positive (Fairlearn's ``_pmf_predict``). The
    outputs follow :mod:`~mlcycle.audit._thresholds`: ``probabilities`` is
    ``[1 - q, q]`` in class order and ``label`` is positive when
    ``q >= u``, ``u`` the same seeded hash, here of the weighted mean of the
    networks' positive probabilities: a deterministic draw of the mix.
    """
    models = [onnx.load_from_string(g) for g in graphs]
    first = models[0]
    inputs = list(first.graph.input)
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    a, b, c = _HASH
    P = "mix/"
    for i, model in enumerate(models):
        prefix = f"h{i}/"
        renamed = onnx.compose.add_prefix(model, prefix)
        nodes += [helper.make_node("Identity", [x.name], [prefix + x.name]) for x in inputs]
        nodes += list(renamed.graph.node)
        initializers += list(renamed.graph.initializer)
        probabilities = prefix + "probabilities"
        # the network's own label is the most probable class (ArgMax: the first on a tie)
        nodes += [
            helper.make_node("Gather", [probabilities, P + "pos"], [P + f"p{i}_2d"], axis=1),
            helper.make_node("Gather", [probabilities, P + "neg"], [P + f"n{i}_2d"], axis=1),
            helper.make_node(
                "Greater" if positive == 1 else "GreaterOrEqual",
                [P + f"p{i}_2d", P + f"n{i}_2d"],
                [P + f"yes{i}_2d"],
            ),
            helper.make_node("Cast", [P + f"yes{i}_2d"], [P + f"yesf{i}"], to=TensorProto.DOUBLE),
            helper.make_node("Cast", [P + f"p{i}_2d"], [P + f"pd{i}"], to=TensorProto.DOUBLE),
            helper.make_node("Mul", [P + f"yesf{i}", P + f"w{i}"], [P + f"q{i}"]),
            helper.make_node("Mul", [P + f"pd{i}", P + f"w{i}"], [P + f"s{i}"]),
        ]
        initializers.append(numpy_helper.from_array(np.asarray([weights[i]]), P + f"w{i}"))
    total = sum(weights)
    nodes += [
        helper.make_node("Sum", [P + f"q{i}" for i in range(len(models))], [P + "q_raw"]),
        helper.make_node("Sum", [P + f"s{i}" for i in range(len(models))], [P + "s_raw"]),
        helper.make_node("Div", [P + "q_raw", P + "total"], [P + "q2"]),  # [N, 1]
        helper.make_node("Div", [P + "s_raw", P + "total"], [P + "s2"]),
        helper.make_node("Mul", [P + "s2", P + "hash_a"], [P + "h1"]),
        helper.make_node("Add", [P + "h1", P + "hash_b"], [P + "h2"]),
        helper.make_node("Sin", [P + "h2"], [P + "h3"]),
        helper.make_node("Mul", [P + "h3", P + "hash_c"], [P + "h4"]),
        helper.make_node("Floor", [P + "h4"], [P + "h5"]),
        helper.make_node("Sub", [P + "h4", P + "h5"], [P + "u"]),
        helper.make_node("GreaterOrEqual", [P + "q2", P + "u"], [P + "yes2"]),
        helper.make_node("Squeeze", [P + "yes2", P + "axis1"], [P + "yes"]),
        helper.make_node("Where", [P + "yes", P + "pos", P + "neg"], [P + "index"]),
        helper.make_node("Gather", [P + "classes", P + "index"], ["label"], axis=0),
        helper.make_node("Sub", [P + "one", P + "q2"], [P + "not_q2"]),
        helper.make_node(
            "Concat",
            [P + "not_q2", P + "q2"] if positive == 1 else [P + "q2", P + "not_q2"],
            [P + "p64"],
            axis=1,
        ),
        helper.make_node("Cast", [P + "p64"], ["probabilities"], to=TensorProto.FLOAT),
    ]
    initializers += [
        numpy_helper.from_array(np.asarray([positive], dtype=np.int64), P + "pos"),
        numpy_helper.from_array(np.asarray([1 - positive], dtype=np.int64), P + "neg"),
        numpy_helper.from_array(np.asarray([total]), P + "total"),
        numpy_helper.from_array(np.asarray([1.0]), P + "one"),
        numpy_helper.from_array(np.asarray([a]), P + "hash_a"),
        numpy_helper.from_array(np.asarray([seed * b + 0.5]), P + "hash_b"),
        numpy_helper.from_array(np.asarray([c]), P + "hash_c"),
        numpy_helper.from_array(np.asarray([1], dtype=np.int64), P + "axis1"),
        numpy_helper.from_array(np.asarray(list(classes), dtype=object), P + "classes"),
    ]
    graph = helper.make_graph(
        nodes,
        "exponentiated_gradient_mix",
        inputs,
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("label", TensorProto.STRING, [None]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=list(first.opset_import), ir_version=first.ir_version
    )
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


# -- retraining under a constraint -----------------------------------------------------------


def retrain(
    project: Project,
    parent: ParentVersion,
    method: str,
    constraint: str,
    eps: float | None,
    grid_size: int,
    max_epochs: int | None,
    seed: int,
) -> Retrained:
    """Retrain ``parent``'s network under ``constraint`` with Fairlearn's reduction ``method``."""
    from fairlearn import reductions  # type: ignore[import-untyped]

    record = parent.record
    if record.run_id is None or "weights.safetensors" not in record.files:
        raise ConflictError(
            f"mitigate --method {method}: {record.ref} has no PyTorch weights to retrain "
            "(a gbm model, a compressed or mitigated variant?); --method threshold works on any version"
        )
    run = project.runs.get(record.run_id)
    if (
        "train" not in run.params
        or run.dataset_version_id is None
        or MODEL_CONFIG not in run.artifacts
        or MODEL_WEIGHTS not in run.artifacts
    ):
        raise ConflictError(
            f"mitigate --method {method}: run {run.id} of {record.ref} is not a training run "
            "to retrain; --method threshold works on any version"
        )
    spec = TrainSpec.model_validate(run.params["train"])
    changes: dict[str, Any] = {"seed": seed}
    if max_epochs is not None:
        changes["max_epochs"] = max_epochs
    spec = TrainSpec.model_validate({**spec.model_dump(), **changes})
    config = json.loads(project.artifacts.read_bytes(run.artifacts[MODEL_CONFIG]))
    prepared = _prepare(project, project.store.get_dataset_version_by_id(run.dataset_version_id))
    layout = FeatureLayout.from_dict(config["layout"])
    prepared = dataclasses.replace(prepared, layout=layout)
    device = pick_device(spec.device)
    width = head_width(spec, prepared.data.task, prepared.data.n_classes)

    def build() -> Any:
        torch.manual_seed(spec.seed)
        return build_model(spec.model, layout, prepared.data.task, width, root=project.root)

    rows = TrainingRows(spec, prepared.data, build, parent.positive, device)
    n = len(prepared.data.train_y)
    X = np.arange(n, dtype=np.float64).reshape(-1, 1)
    y = (prepared.data.train_y == parent.positive).astype(np.int64)
    groups = parent.groups["train"]
    bound = eps if eps is not None else 0.01
    moment = {
        "demographic_parity": reductions.DemographicParity,
        "equalized_odds": reductions.EqualizedOdds,
        "true_positive_rate_parity": reductions.TruePositiveRateParity,
        "false_positive_rate_parity": reductions.FalsePositiveRateParity,
        "error_rate_parity": reductions.ErrorRateParity,
    }[constraint]
    estimator = TorchEstimator(rows)
    params: dict[str, Any] = {
        "constraint": constraint,
        "max_epochs": spec.max_epochs,
        "seed": seed,
        "retrained_from_run": run.id,
    }
    details: dict[str, Any] = {}
    if method == "grid-search":
        search = reductions.GridSearch(
            estimator, constraints=moment(), grid_size=grid_size, constraint_weight=0.5
        )
        with _quiet_fairlearn():
            search.fit(X, y, sensitive_features=groups)
        networks, weights = [search.predictors_[search.best_idx_]], [1.0]
        params |= {"grid_size": grid_size, "constraint_weight": 0.5}
        details = {
            "grid": [
                {str(k): float(v) for k, v in search.lambda_vecs_[c].items()}
                for c in search.lambda_vecs_.columns
            ],
            "chosen": int(search.best_idx_),
        }
    else:
        gradient = reductions.ExponentiatedGradient(
            estimator, constraints=moment(difference_bound=bound), eps=bound, max_iter=grid_size
        )
        with _quiet_fairlearn():
            gradient.fit(X, y, sensitive_features=groups)
        kept = [(h, float(w)) for h, w in gradient.weights_.items() if w > 0]
        networks = [gradient.predictors_[h] for h, _ in kept]
        weights = [w for _, w in kept]
        params |= {"eps": bound, "max_iter": grid_size}
        details = {
            "weights": weights,
            "best_iteration": int(gradient.best_iter_),
            "note": "the randomized mix of these networks is one graph (see mixture_graph)",
        }
    details["networks_trained"] = rows.fits
    return Retrained(networks, weights, params, details, prepared, spec, run)


def reduction_variant(
    project: Project,
    parent: ParentVersion,
    retrained: Retrained,
    *,
    method: str,
    run_params: dict[str, Any],
    seed: int,
) -> tuple[bytes, Any, dict[str, str], dict[str, Any]]:
    """The variant's graph, its (finished) run, the files to store with it, its check.

    One network (grid search): a training run of its own, with weights, the
    ONNX export checked against PyTorch (the registration parity check). A mix
    (exponentiated gradient): a run with the facts and one graph of all the
    networks, whose ``q`` is checked against the networks' PyTorch labels.
    """
    from mlcycle.registry import Predictor
    from mlcycle.train import encode, export_onnx, verify_export
    from mlcycle.train._run import _finish

    prepared, spec, train_run = retrained.prepared, retrained.spec, retrained.run
    test = parent.splits["test"]
    run = project.runs.start(
        f"{train_run.name}-{method}",
        params={
            "train": spec.model_dump(mode="json"),
            "dataset": prepared.version.ref,
            "split": prepared.split_counts,
            "mitigate": run_params | retrained.params,
        },
        dataset=prepared.version.ref,
        parent=train_run.id,
        tags={"kind": "mitigate", "model": parent.record.name, "method": method},
        experiment="mitigate",
    )
    classes = parent.classes
    if len(retrained.networks) == 1:
        network = retrained.networks[0]
        with run:
            run.log_metrics_rows(list(enumerate(network.result_.history)))
            _finish(project, run, spec, None, prepared, network.result_)
        record = project.runs.get(run.id)
        stored = {
            "weights.safetensors": record.artifacts[MODEL_WEIGHTS],
            "model.json": record.artifacts[MODEL_CONFIG],
        }
        graph = export_onnx(network.model_, prepared.layout, classes, "binary")
        variant = Predictor(graph, parent.signature, name=parent.record.name)
        return graph, run, stored, verify_export(network.model_, prepared.layout, variant, test)
    graphs = [export_onnx(n.model_, prepared.layout, classes, "binary") for n in retrained.networks]
    graph = mixture_graph(
        graphs, retrained.weights, classes=classes, positive=parent.positive, seed=seed
    )
    variant = Predictor(graph, parent.signature, name=parent.record.name)
    answer = variant.predict(test.select([s["name"] for s in parent.signature["inputs"]]))
    assert answer.probabilities is not None
    q = answer.probabilities[:, parent.positive].astype(np.float64)
    encoded = encode(test, prepared.layout)
    reference = np.zeros(test.num_rows)
    for network, weight in zip(retrained.networks, retrained.weights, strict=True):
        out = predict(network.model_, encoded, torch.device("cpu")).numpy()
        reference += weight * (out.argmax(axis=1) == parent.positive)
    reference /= sum(retrained.weights)
    off = np.abs(q - reference) > 1e-6
    check = {
        "reference": f"its {len(graphs)} PyTorch networks, weighted",
        "networks": len(graphs),
        "rows": int(test.num_rows),
        "max_probability_difference": float(np.abs(q - reference).max()),
        "rows_off": int(off.sum()),  # a network's own label flipped by float noise at a tie
        "label_agreement": float(1 - off.mean()),  # of q, the mix's answer
        "max_abs_diff": float(np.abs(q - reference).max()),
    }
    if off.mean() > 0.01:
        raise MlcycleError(
            f"mitigate: the mixed graph disagrees with its PyTorch networks on {int(off.sum())} "
            f"of {test.num_rows} test rows; nothing registered"
        )
    with run:
        run.finish("finished", {"check": check, **retrained.details})
    return graph, run, {}, check
