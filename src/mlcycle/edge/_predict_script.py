"""Predict with this model bundle, using ONNX Runtime and numpy only.

This file was written by mlcycle into a model bundle (``manifest.json`` names
the model). It needs neither mlcycle, pandas nor torch, and runs on Python 3.8
or newer::

    pip install onnxruntime numpy
    python predict.py rows.csv               # a CSV file with a header row
    python predict.py rows.json              # [{...}, ...] or {"records": [...]}
    cat rows.csv | python predict.py -       # CSV or JSON on standard input

It prints one JSON object per input row, in input order:
``{"label": ..., "probabilities": {class: p}}`` for a classifier,
``{"value": ...}`` for a regressor.

Before loading the model it checks every file listed in ``manifest.json``
against its sha256. Exit codes: 0 done; 1 the rows are unusable (the message
names the column, and the row counted from 1); 2 a bundle file is missing,
damaged or altered; 3 this ONNX Runtime cannot load the model.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as exc:  # pragma: no cover - depends on the device
    sys.exit(f"predict.py needs numpy and onnxruntime ({exc}): pip install onnxruntime numpy")

BUNDLE = Path(__file__).resolve().parent
NEEDED = ("model.onnx", "signature.json")
TRUE = ("true", "1", "yes", "t", "y")
FALSE = ("false", "0", "no", "f", "n")
MISSING = ("", "nan", "null", "none")


class InputError(Exception):
    """The rows cannot be turned into model inputs (exit code 1)."""


class BundleError(Exception):
    """A bundle file is missing or differs from manifest.json (exit code 2)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(bundle: Path) -> dict[str, Any]:
    """The manifest, once every file it lists matches its recorded sha256."""
    try:
        manifest: dict[str, Any] = json.loads((bundle / "manifest.json").read_text("utf-8"))
        files: dict[str, Any] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"manifest.json is missing or unreadable ({exc})") from None
    for name in NEEDED:
        if name not in files:
            raise BundleError(f"manifest.json does not list {name}")
    for name, entry in files.items():
        path = bundle / name
        if Path(name).name != name or not path.is_file():
            raise BundleError(f"{name} is missing from the bundle")
        actual = sha256_of(path)
        if actual != entry.get("sha256"):
            raise BundleError(
                f"{name} does not match manifest.json (sha256 {actual}, expected "
                f"{entry.get('sha256')}): the file was damaged or altered"
            )
    return manifest


def read_rows(source: str) -> list[dict[str, Any]]:
    """Records from a CSV or JSON file, or from standard input for ``-``."""
    label = "standard input" if source == "-" else source
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {label}: {exc}") from None
    suffix = Path(source).suffix.lower()
    is_json = suffix in (".json", ".jsonl") or (
        suffix != ".csv" and text.lstrip()[:1] in ("[", "{")
    )
    rows = json_rows(text, label) if is_json else csv_rows(text, label)
    if not rows:
        raise InputError(f"{label} holds no rows")
    return rows


def json_rows(text: str, label: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        try:  # JSON Lines: one record per line
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise InputError(f"{label} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("records", [data])
    if not isinstance(data, list):
        raise InputError(f'{label}: expected a list of records or {{"records": [...]}}')
    for i, record in enumerate(data, 1):
        if not isinstance(record, dict):
            raise InputError(f"{label}, row {i}: expected an object, got {type(record).__name__}")
    return data


def csv_rows(text: str, label: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for i, row in enumerate(reader, 1):
        if None in row:
            raise InputError(f"{label}, row {i}: more fields than the header has columns")
        rows.append(dict(row))
    return rows


def number(column: str, row: int, value: Any, boolean: bool) -> float:
    """A value as float; None, "" and "nan" are missing (NaN: the model imputes them)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text is None or text in MISSING:
        return math.nan
    if boolean and text in TRUE + FALSE:
        return 1.0 if text in TRUE else 0.0
    kind = "a boolean (true/false/1/0)" if boolean else "a number"
    problem = InputError(f"column {column!r}, row {row}: {value!r} is not {kind}")
    try:
        result = float(text)
    except (TypeError, ValueError):
        raise problem from None
    if boolean and result not in (0.0, 1.0) and not math.isnan(result):
        raise problem
    return result


def category(value: Any) -> str:
    """A value as the model's string; missing is "" (as is any unseen category)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def image(column: str, row: int, value: Any, shape: list[int]) -> np.ndarray[Any, Any]:
    """An image from a (nested or flat) list, a JSON list string or space-separated numbers."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else text.replace(",", " ").split()
        except ValueError:
            raise InputError(f"column {column!r}, row {row}: not a JSON list of numbers") from None
    if value is None or value == []:
        raise InputError(f"column {column!r}, row {row}: no image (images cannot be missing)")
    try:
        pixels = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"column {column!r}, row {row}: not a list of numbers") from None
    size = math.prod(shape)
    if pixels.size != size:
        raise InputError(
            f"column {column!r}, row {row}: {pixels.size} values, expected {size} (shape {shape})"
        )
    if not np.isfinite(pixels).all():
        raise InputError(f"column {column!r}, row {row}: the image holds NaN or infinite values")
    return pixels.reshape(shape)


def to_feeds(rows: list[dict[str, Any]], signature: dict[str, Any]) -> dict[str, Any]:
    """The model's inputs, one array per column of the signature."""
    names = [spec["name"] for spec in signature["inputs"]]
    present = {key for row in rows for key in row}
    for name in names:
        if name not in present:
            raise InputError(f"missing input column {name!r}; the model takes: {', '.join(names)}")
    extra = sorted(present - set(names) - {signature.get("target")})
    if extra:
        raise InputError(f"unexpected column {extra[0]!r}; the model takes: {', '.join(names)}")
    feeds: dict[str, Any] = {}
    for spec in signature["inputs"]:
        name, kind = spec["name"], spec["kind"]
        values = [(i, row.get(name)) for i, row in enumerate(rows, 1)]
        if kind in ("numeric", "boolean"):
            floats = [number(name, i, v, kind == "boolean") for i, v in values]
            feeds[name] = np.array(floats, dtype=np.float32)
        elif kind == "categorical":
            feeds[name] = np.array([category(v) for _, v in values], dtype=object)
        elif kind == "image":
            shape = [int(d) for d in spec["shape"][1:]]
            feeds[name] = np.stack([image(name, i, v, shape) for i, v in values])
        else:
            raise InputError(f"input {name!r} has kind {kind!r}, unknown to this predict.py")
    return feeds


def predict(
    session: Any, signature: dict[str, Any], feeds: dict[str, Any], batch_size: int
) -> Iterator[dict[str, Any]]:
    """One JSON-able mapping per row, running ``batch_size`` rows at a time."""
    rows = len(next(iter(feeds.values())))
    classes = signature.get("classes") or []
    regression = signature["task"] == "regression"
    wanted = ["value"] if regression else ["label", "probabilities"]
    for start in range(0, rows, batch_size):
        batch = {name: array[start : start + batch_size] for name, array in feeds.items()}
        outputs = session.run(wanted, batch)
        for i in range(len(outputs[0])):
            if regression:
                yield {"value": float(outputs[0][i])}
            else:
                probabilities = outputs[1][i]
                yield {
                    "label": str(outputs[0][i]),
                    "probabilities": {c: float(probabilities[j]) for j, c in enumerate(classes)},
                }


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Predict rows with the model of this bundle (ONNX Runtime, no mlcycle).",
        epilog="Exit codes: 0 done, 1 unusable rows, 2 bundle damaged or altered, "
        "3 model not loadable by this ONNX Runtime.",
    )
    parser.add_argument("rows", help="a CSV file with a header row, a JSON file, or - for stdin")
    parser.add_argument(
        "--batch-size",
        type=positive,
        default=256,
        metavar="N",
        help="rows per ONNX Runtime call (default: 256)",
    )
    parser.add_argument(
        "--threads",
        type=positive,
        default=None,
        metavar="N",
        help="ONNX Runtime intra-op threads (default: its own choice)",
    )
    args = parser.parse_args(argv)
    try:
        manifest = verify(BUNDLE)
        signature = json.loads((BUNDLE / "signature.json").read_text("utf-8"))
    except (BundleError, ValueError) as exc:
        print(f"predict.py: bundle check failed: {exc}", file=sys.stderr)
        return 2
    try:
        feeds = to_feeds(read_rows(args.rows), signature)
    except InputError as exc:
        print(f"predict.py: {exc}", file=sys.stderr)
        return 1
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if args.threads:
        options.intra_op_num_threads = args.threads
    try:
        session = ort.InferenceSession(
            str(BUNDLE / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        needed = manifest.get("requires", {}).get("onnxruntime", "")
        print(
            f"predict.py: onnxruntime {ort.__version__} cannot load model.onnx "
            f"(the bundle needs onnxruntime{needed}): {exc}",
            file=sys.stderr,
        )
        return 3
    try:
        for record in predict(session, signature, feeds, args.batch_size):
            sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader (``head``, say) stopped early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
