"""The search space of a study: which fields of ``train`` it draws, and how.

``tune.space`` names fields of ``train`` (``lr``, ``model.hidden``,
``schedule.kind``) with a range or a list of choices; when it is empty the
model kind's defaults below are searched. Two names set several fields at
once: ``model.depth`` and ``model.width`` (hidden layers of an MLP, or
convolutions of a CNN whose channels double from ``width``).

Every value the space can draw is checked against the spec before the first
trial, so a range that strays outside what a field allows (``dropout`` up to
1) is a one-line error naming the field, the value and what is allowed, not
a failed trial an hour in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from mlcycle.errors import SpecError
from mlcycle.spec import KIND_OPTIONS, TUNE_VIRTUAL, ParamSpace, Spec, train_fields, tune_path

if TYPE_CHECKING:
    import optuna

__all__ = [
    "Param",
    "budget_field",
    "decoded",
    "default_space",
    "epoch_budget",
    "grid_space",
    "overrides_of",
    "resolve_space",
    "suggest",
]

_COMMON: dict[str, ParamSpace] = {
    "lr": ParamSpace(low=1e-4, high=3e-2, log=True),
    "batch_size": ParamSpace(choices=(32, 64, 128, 256)),
    "model.activation": ParamSpace(choices=("relu", "gelu", "silu", "tanh", "leaky_relu")),
    "model.dropout": ParamSpace(low=0.0, high=0.5),
    "weight_decay": ParamSpace(low=1e-6, high=1e-2, log=True),
    "optimizer": ParamSpace(choices=("adamw", "adam", "sgd")),
    "schedule.kind": ParamSpace(choices=("constant", "cosine")),
}
_ARCHITECTURE: dict[str, dict[str, ParamSpace]] = {
    "mlp": {
        "model.depth": ParamSpace(low=1, high=3),
        "model.width": ParamSpace(choices=(32, 64, 128, 256)),
    },
    "cnn": {
        "model.depth": ParamSpace(low=1, high=3),
        "model.width": ParamSpace(choices=(8, 16, 32)),
    },
}


# Gradient-boosted trees: no optimiser nor layers; LightGBM's own settings (train.model.options).
_GBM: dict[str, ParamSpace] = {
    "model.options.learning_rate": ParamSpace(low=0.01, high=0.3, log=True),
    "model.options.num_leaves": ParamSpace(low=8, high=128, log=True),
    "model.options.min_child_samples": ParamSpace(low=5, high=100, log=True),
    "model.options.feature_fraction": ParamSpace(low=0.5, high=1.0),
    "model.options.lambda_l2": ParamSpace(low=1e-3, high=10.0, log=True),
}
_OWN_SPACE: dict[str, dict[str, ParamSpace]] = {"gbm": _GBM}
_OPTIONS = "model.options."
_UNREAD: dict[str, tuple[str, ...]] = {"linear": ("model.activation", "model.dropout")}


def default_space(kind: str) -> dict[str, ParamSpace]:
    """What a study searches when ``tune.space`` is empty: optimisation, then architecture.

    A kind searches only the fields it reads (``linear`` has no activation); a kind
    with settings of its own (``gbm``) searches those instead.

    >>> sorted(default_space("mlp"))[:3]
    ['batch_size', 'lr', 'model.activation']
    >>> sorted(default_space("gbm"))[0]
    'model.options.feature_fraction'
    """
    if kind in _OWN_SPACE:
        return dict(_OWN_SPACE[kind])
    common = {k: v for k, v in _COMMON.items() if k not in _UNREAD.get(kind, ())}
    return {**common, **_ARCHITECTURE.get(kind, {})}


def budget_field(spec: Spec) -> str:
    """The field that caps a trial's epochs: ``train.max_epochs``, or a gbm's boosting rounds."""
    if spec.train.model.kind in KIND_OPTIONS:
        return "train.model.options.n_estimators"
    return "train.max_epochs"


def epoch_budget(spec: Spec) -> int:
    """The most epochs (a gbm's boosting rounds) one trial trains: Hyperband's resource."""
    kind = spec.train.model.kind
    if kind in KIND_OPTIONS:
        options = KIND_OPTIONS[kind].model_validate(spec.train.model.options)
        return int(getattr(options, "n_estimators", spec.train.max_epochs))
    return spec.train.max_epochs


def _option_default(spec: Spec, path: str, where: str) -> Any:
    """The value of ``model.options.NAME`` now: the spec's, else the kind's default."""
    kind = spec.train.model.kind
    name = path[len(_OPTIONS) :]
    model = KIND_OPTIONS.get(kind)
    if model is None or name not in model.model_fields:
        known = ", ".join(sorted(model.model_fields)) if model is not None else "none"
        raise SpecError(
            f"{where}: model kind {kind!r} has no option {name!r} (its options: {known})"
        )
    return spec.train.model.options.get(name, getattr(model(), name))


@dataclass(frozen=True)
class Param:
    """One searched dimension: its name in the study, and how values are drawn."""

    name: str
    kind: Literal["float", "int", "categorical"]
    space: ParamSpace

    @property
    def encoded_choices(self) -> list[Any]:
        """Choices as Optuna stores them: lists and mappings as JSON text."""
        return [_encode(c) for c in self.space.choices or ()]


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value)


def _decode(param: Param, value: Any) -> Any:
    if param.kind != "categorical":
        return value
    for choice in param.space.choices or ():
        if _encode(choice) == value:
            return choice
    return value


def resolve_space(spec: Spec) -> list[Param]:
    """The study's dimensions, each checked against what its field allows.

    Raises:
        SpecError: a range over a field that is not a number, or a value of
            the space that the field refuses (named with the field's rule).
    """
    space = spec.tune.space or default_space(spec.train.model.kind)
    fields = train_fields(spec.train)
    params = []
    sets: dict[str, str] = {}  # a train field -> the first name of the space that writes it
    for name, item in space.items():
        path = tune_path(name)
        where = f"tune.space.{name}"
        _check_once(where, name, _written(spec, path), sets)
        if path in TUNE_VIRTUAL:
            current: Any = 1
            if spec.train.model.kind not in _ARCHITECTURE:
                raise SpecError(
                    f"{where}: model kind {spec.train.model.kind!r} has no {path}; "
                    f"it applies to {', '.join(_ARCHITECTURE)}"
                )
        elif path.startswith(_OPTIONS):
            current = _option_default(spec, path, where)
        elif path not in fields:
            raise SpecError(f"{where}: train.{path} names no field that a study can search")
        else:
            current = fields[path]
        if item.choices is not None:
            param = Param(name, "categorical", item)
            samples = list(item.choices)
        else:
            assert item.low is not None and item.high is not None
            if isinstance(current, bool) or not isinstance(current, int | float | None):
                raise SpecError(
                    f"{where}: a range cannot search a {type(current).__name__} field "
                    f"(now {current!r}); list its values as choices"
                )
            integral = isinstance(current, int) and not isinstance(current, bool)
            if integral and (item.low != int(item.low) or item.high != int(item.high)):
                raise SpecError(
                    f"{where}: {path} is an integer; low {item.low} and high {item.high} must be too"
                )
            if integral and item.step is not None and item.step != int(item.step):
                raise SpecError(f"{where}: {path} is an integer; step {item.step} must be too")
            if item.step is not None:
                _check_step(where, item, integral)
            param = Param(name, "int" if integral else "float", item)
            samples = [int(item.low), int(item.high)] if integral else [item.low, item.high]
        for value in samples:
            _check(spec, param, value)
        params.append(param)
    return params


def _written(spec: Spec, path: str) -> str:
    """The field of ``train`` a space's name writes (depth and width write the layers)."""
    if path not in TUNE_VIRTUAL:
        return path
    return "model.channels" if spec.train.model.kind == "cnn" else "model.hidden"


def _check_once(where: str, name: str, field: str, sets: dict[str, str]) -> None:
    """Refuse a second name for a field (``lr`` and ``train.lr``): the later write would win."""
    first = sets.setdefault(field, name)
    both_virtual = tune_path(first) in TUNE_VIRTUAL and tune_path(name) in TUNE_VIRTUAL
    if first != name and not (both_virtual and tune_path(first) != tune_path(name)):
        raise SpecError(
            f"{where}: sets train.{field}, as tune.space.{first} does; search each field once"
        )


def _check_step(where: str, item: ParamSpace, integral: bool) -> None:
    """A range's step must divide it: Optuna would cut ``high`` down with a warning, mid-study."""
    assert item.low is not None and item.high is not None and item.step is not None
    low, high, step = (
        Decimal(str(int(v) if integral else v)) for v in (item.low, item.high, item.step)
    )
    if (high - low) % step:
        fits = low + (high - low) // step * step
        raise SpecError(
            f"{where}: step {step} does not divide the range [{low}, {high}]; "
            f"make high - low a multiple of it (e.g. high {fits})"
        )


def _check(spec: Spec, param: Param, value: Any) -> None:
    try:
        spec.with_overrides(overrides_of(spec, {param.name: value}), via="tune.space")
    except SpecError as exc:
        # The spec lists each broken field on a line of its own; a space's refusal is one line.
        why = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise SpecError(f"tune.space.{param.name}: the value {value!r} is refused: {why}") from None


def overrides_of(spec: Spec, values: dict[str, Any]) -> dict[str, Any]:
    """Spec overrides (dotted ``train.`` keys) for one trial's drawn values."""
    out: dict[str, Any] = {}
    depth = values.get("model.depth")
    width = values.get("model.width")
    for name, value in values.items():
        if tune_path(name) not in TUNE_VIRTUAL:
            out[f"train.{tune_path(name)}"] = value
    if depth is not None or width is not None:
        model = spec.train.model
        if model.kind == "cnn":
            d = int(depth) if depth is not None else len(model.channels)
            w = int(width) if width is not None else model.channels[0]
            out["train.model.channels"] = [w * 2**i for i in range(d)]
        else:
            d = int(depth) if depth is not None else len(model.hidden)
            w = int(width) if width is not None else model.hidden[0]
            out["train.model.hidden"] = [w] * d
    return out


def suggest(trial: optuna.Trial, params: list[Param]) -> dict[str, Any]:
    """Draw one value per dimension from the trial's sampler (decoded to what the spec takes)."""
    values: dict[str, Any] = {}
    for p in params:
        s = p.space
        if p.kind == "categorical":
            values[p.name] = _decode(p, trial.suggest_categorical(p.name, p.encoded_choices))
        elif p.kind == "int":
            assert s.low is not None and s.high is not None
            step = int(s.step) if s.step is not None else 1
            values[p.name] = trial.suggest_int(
                p.name, int(s.low), int(s.high), step=step, log=s.log
            )
        else:
            assert s.low is not None and s.high is not None
            values[p.name] = trial.suggest_float(p.name, s.low, s.high, step=s.step, log=s.log)
    return values


def decoded(params: list[Param], raw: dict[str, Any]) -> dict[str, Any]:
    """A trial's stored parameters as the spec takes them (choices decoded)."""
    by_name = {p.name: p for p in params}
    return {k: _decode(by_name[k], v) if k in by_name else v for k, v in raw.items()}


def grid_space(params: list[Param]) -> dict[str, list[Any]]:
    """The grid a grid search walks: every choice, every integer, or a float range's steps.

    Raises:
        SpecError: a float range without a step (a grid needs values to list).
    """
    grid: dict[str, list[Any]] = {}
    for p in params:
        s = p.space
        if p.kind == "categorical":
            grid[p.name] = p.encoded_choices
            continue
        assert s.low is not None and s.high is not None
        if p.kind == "int" and not s.log:
            grid[p.name] = list(range(int(s.low), int(s.high) + 1, int(s.step or 1)))
        elif s.step is not None:
            # In decimal, as Optuna checks a value: 0.1 + 2 * 0.1 is 0.30000000000000004 in floats.
            low, high, step = (Decimal(str(v)) for v in (s.low, s.high, s.step))
            count = int((high - low) // step) + 1
            grid[p.name] = [float(low + i * step) for i in range(count)]
        else:
            raise SpecError(
                f"tune.space.{p.name}: the grid sampler needs values to list; "
                f"give choices or a step for the range [{s.low}, {s.high}]"
            )
    return grid
