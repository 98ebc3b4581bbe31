"""What ``POST /feedback`` accepts: labels the served model could have answered, under a token.

A label goes into the prediction log as text and is read back by every
monitoring run over its window, so one bad label (``"banana"``, ``null``,
``{"x": [1]}``) would make them all fail. So each label is checked when it
arrives: for a classifier it must be one of the served versions' classes,
compared by value (``1``, ``"1"`` and ``1.0`` are class ``"1"``), and it is
stored as that class's name; for a regressor it must be a finite number.
A request holds at most :data:`MAX_LABELS` labels and request ids of at most
:data:`MAX_ID_CHARS` characters.

Example:
    >>> rule = LabelRule("digits", "multiclass", ["0", "1", "2"])
    >>> [rule.label(v) for v in (1, "1", 1.0, "2.0", 7, "one", None)]
    ['1', '1', '1', '2', None, None, None]
    >>> check_labels([{"request_id": "r1", "label": 1.0}], rule)
    [('r1', '1')]
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from mlcycle._numbers import finite
from mlcycle.errors import DataError

if TYPE_CHECKING:
    from mlcycle.registry import Predictor

__all__ = [
    "MAX_ID_CHARS",
    "MAX_LABELS",
    "RETRY_AFTER_S",
    "LabelRule",
    "bearer_matches",
    "check_labels",
]

MAX_LABELS = 10_000  # labels in one request
MAX_ID_CHARS = 256  # a request id's characters (a served id plus ':ROW' fits)
RETRY_AFTER_S = 5  # asked of a client whose labels could not be written (a full disk)
_SHOWN_CLASSES = 20  # an error lists this many of the allowed classes


def _shown(value: Any, limit: int = 60) -> str:
    """A value as the client sent it (JSON), cut to ``limit`` characters."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN; a Python caller may pass one
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LabelRule:
    """Which labels a served model takes: one of its classes (by value), or a finite number.

    Args:
        model: the model's name, for messages.
        task: the signature's task (``regression``, ``binary``, ``multiclass``).
        classes: the class names, for a classifier.
    """

    def __init__(self, model: str, task: str, classes: Iterable[str] | None) -> None:
        self.model = model
        self.regression = task == "regression"
        self.classes = list(dict.fromkeys(classes or ()))
        self._names = set(self.classes)
        self._by_number: dict[float, str] = {}
        self._by_truth: dict[str, str] = {}  # JSON true/false for classes 'True'/'true'...
        for name in self.classes:
            number = finite(name)
            if number is not None:
                self._by_number.setdefault(number, name)
            if name.lower() in ("true", "false"):
                self._by_truth.setdefault(name.lower(), name)

    @classmethod
    def of(cls, predictors: Sequence[Predictor]) -> LabelRule:
        """The rule for the versions a server answers with: the first's task, all their classes."""
        first = predictors[0]
        classes = [c for p in predictors if p.task == first.task for c in (p.classes or ())]
        return cls(first.name, first.task, classes)

    def label(self, value: Any) -> str | None:
        """The label as it is stored (the class's name, or the number as text), or None."""
        if self.regression:
            number = finite(value)
            return None if number is None else repr(number)
        if isinstance(value, bool):
            return self._by_truth.get(str(value).lower())
        if isinstance(value, str) and value in self._names:
            return value
        number = finite(value)
        return None if number is None else self._by_number.get(number)

    def allowed(self) -> str:
        """What :meth:`label` takes, in words for an error message."""
        if self.regression:
            return f"a finite number ({self.model!r} is a regressor)"
        shown = ", ".join(repr(c) for c in self.classes[:_SHOWN_CLASSES])
        more = len(self.classes) - _SHOWN_CLASSES
        return f"one of {shown}" + (f", … ({len(self.classes)} classes)" if more > 0 else "")


def check_labels(items: list[Any], rule: LabelRule) -> list[tuple[str, str]]:
    """``(request_id, label)`` pairs from a feedback body's ``labels`` list, all checked.

    Raises:
        DataError: too many labels, or an item that is not
            ``{"request_id": "...", "label": ...}`` (with an optional ``"row"``:
            row i of a multi-row request, the same as request id ``"R:i"``)
            with an allowed label;
            the message names the item's index, its request id and value.
    """
    if len(items) > MAX_LABELS:
        raise DataError(f"{len(items)} labels in one request: at most {MAX_LABELS}")
    rows: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        where = f"labels[{index}]"
        if not isinstance(item, dict):
            raise DataError(
                f'{where}: expected {{"request_id": "...", "label": ...}}, got {_shown(item)}'
            )
        request_id = item.get("request_id")
        row = item.get("row")
        if row is not None and isinstance(request_id, str):
            # {"request_id": R, "row": i} names row i of a multi-row request: R:i
            if type(row) is not int or not 0 <= row < MAX_LABELS * 100:
                raise DataError(f"{where}: row must be a row number (0, 1, ...), got {_shown(row)}")
            request_id = f"{request_id}:{row}"
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
            size = (
                f"{len(request_id)} characters"
                if isinstance(request_id, str)
                else _shown(request_id)
            )
            raise DataError(
                f"{where}: request_id must be a string of 1 to {MAX_ID_CHARS} characters, got {size}"
            )
        where = f"{where} (request_id {request_id!r})"
        if "label" not in item:
            raise DataError(f'{where}: no "label"; expected {rule.allowed()}')
        label = rule.label(item["label"])
        if label is None:
            raise DataError(
                f"{where}: label {_shown(item['label'])} is not a label of {rule.model!r}; "
                f"expected {rule.allowed()}"
            )
        rows.append((request_id, label))
    return rows


class RecentIds:
    """Request ids this process answered lately, to tell a label's sender whether it matched.

    Bounded (the oldest are forgotten first); a request of several rows is kept
    once with its row count, and ``R:i`` matches its row ``i``.

    Example:
        >>> recent = RecentIds(limit=2)
        >>> recent.add("a", 1); recent.add("b", 3)
        >>> [recent.known(i) for i in ("a", "b:2", "b:3", "c")]
        [True, True, False, False]
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._rows: dict[str, int] = {}  # insertion-ordered: the oldest first

    def add(self, request_id: str, rows: int) -> None:
        self._rows[request_id] = rows
        if len(self._rows) > self.limit:
            del self._rows[next(iter(self._rows))]

    def known(self, request_id: str) -> bool:
        rows = self._rows.get(request_id)
        if rows is not None:
            return True
        base, _, row = request_id.rpartition(":")
        if not base or not row.isascii() or not row.isdigit():
            return False
        rows = self._rows.get(base)
        return rows is not None and rows > 1 and int(row) < rows


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <token>``, compared in constant time.

    Both sides are hashed first, so the time taken does not reveal even the token's length.

    Example:
        >>> bearer_matches("Bearer s3cret", "s3cret"), bearer_matches("s3cret", "s3cret")
        (True, False)
    """
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    digest = hashlib.sha256(given.strip().encode()).digest()
    return hmac.compare_digest(digest, hashlib.sha256(token.encode()).digest())
