"""The README.md of a bundle: what a person on the device needs, and nothing about mlcycle."""

from __future__ import annotations

from typing import Any

__all__ = ["render_readme"]

_SHOWN_CATEGORIES = 12
_TASKS = {
    "binary": "binary classification",
    "multiclass": "multiclass classification",
    "regression": "regression",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: float) -> str:
    return f"{value:.6g}"


def _input_row(spec: dict[str, Any]) -> str:
    kind = spec["kind"]
    if kind == "image":
        dims = ", ".join(str(d) for d in spec["shape"][1:])
        dtype = f"float32 [{dims}]"
    else:
        dtype = "string" if kind == "categorical" else "float32"
    if kind == "categorical":
        categories = list(spec.get("categories") or [])
        shown = ", ".join(f"`{c}`" for c in categories[:_SHOWN_CATEGORIES])
        more = len(categories) - _SHOWN_CATEGORIES
        values = shown + (f", … ({len(categories)} in all: see signature.json)" if more > 0 else "")
        values += "; any other value counts as unseen"
    elif kind == "boolean":
        values = "true / false (or 1 / 0)"
    elif spec.get("range"):
        low, high = spec["range"]
        values = f"{_number(low)} to {_number(high)} in training"
    else:
        values = ""
    missing = "required" if kind == "image" else "may be blank"
    return f"| `{_cell(spec['name'])}` | {kind} | {dtype} | {_cell(values)} | {missing} |"


def _outputs(signature: dict[str, Any]) -> str:
    target = signature.get("target") or "target"
    if signature["task"] == "regression":
        return f'One JSON object per row, in input order: `{{"value": 152.3}}`, the predicted `{target}`.'
    classes = [str(c) for c in signature.get("classes") or []]
    shown = classes[:3]
    rest = 0.2 / max(len(classes) - 1, 1)
    example = ", ".join(f'"{c}": {0.8 if i == 0 else rest:.2g}' for i, c in enumerate(shown)) + (
        ", ..." if len(classes) > len(shown) else ""
    )
    label = shown[0] if shown else "..."
    return (
        "One JSON object per row, in input order: the predicted class and the probability "
        f'of every class, e.g. `{{"label": "{label}", "probabilities": {{{example}}}}}`.\n\n'
        f"Classes of `{target}`: {', '.join(f'`{_cell(c)}`' for c in classes)}."
    )


def _demote_headings(markdown: str, levels: int = 2) -> str:
    """``markdown`` with its headings moved down, so that a card's ``#`` sits under ours.

    >>> print(_demote_headings("# Card\\n```sh\\n# not a heading\\n```"))
    ### Card
    ```sh
    # not a heading
    ```
    """
    lines, fenced = [], False
    for line in markdown.strip().splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            line = "#" * levels + line
        lines.append(line)
    return "\n".join(lines)


_FILES = {
    "README.md": "this file",
    "manifest.json": "the sha256 and size of every other file, and what the bundle requires",
    "model.onnx": "the model (ONNX)",
    "model.ort": "the same model in ORT format, for ONNX Runtime Mobile",
    "predict.py": "the prediction script",
    "signature.json": "the inputs and outputs, as the script reads them",
}


def render_readme(
    *,
    model_ref: str,
    signature: dict[str, Any],
    manifest: dict[str, Any],
    latency_ms: float,
    onnxruntime_version: str,
    card_md: str | None,
) -> str:
    """The README text; ``manifest`` is the one written beside it (without README.md)."""
    task = _TASKS.get(signature["task"], signature["task"])
    requires = manifest["requires"]
    install = " ".join(f'"{name}{spec}"' for name, spec in requires.items())
    names = [spec["name"] for spec in signature["inputs"]]
    files = sorted([*manifest["files"], "README.md", "manifest.json"])
    lines = [
        f"# {model_ref}: edge bundle",
        "",
        f"A self-contained copy of the model `{model_ref}` ({task} of "
        f"`{signature.get('target') or 'target'}`), ready to run on a device with ONNX Runtime "
        "and numpy alone: no mlcycle, pandas or PyTorch needed.",
        "",
        "## Install",
        "",
        "Python 3.8 or newer, then:",
        "",
        f"    pip install {install}",
        "",
        "## Run",
        "",
        "    python predict.py rows.csv                 # CSV with a header row",
        '    python predict.py rows.json                # [{...}, ...] or {"records": [...]}',
        "    cat rows.csv | python predict.py -         # CSV or JSON on standard input",
        "    python predict.py rows.csv --batch-size 64 --threads 1",
        "",
        "The columns are named as in the table below (a target column may ride along and is "
        "ignored; any other column is an error). Blank, `null` or `NaN` values are missing: "
        "the model fills them in as it learnt to. In a CSV, an image is one field holding a "
        "JSON list (flat or nested) or its numbers separated by spaces, row by row.",
        "",
        "Exit codes: 0 done; 1 unusable rows (the message names the column and the row, "
        "counted from 1); 2 a bundle file is missing, damaged or altered; 3 this ONNX Runtime "
        "cannot load the model.",
        "",
        f"Median latency for one row on the machine that built the bundle: {latency_ms:.3f} ms "
        f"(ONNX Runtime {onnxruntime_version}, one thread). A small device is slower: time it "
        "there.",
        "",
        "## Inputs",
        "",
        f"In order: {', '.join(f'`{_cell(n)}`' for n in names)}.",
        "",
        "| column | kind | type | values | missing |",
        "| --- | --- | --- | --- | --- |",
        *(_input_row(spec) for spec in signature["inputs"]),
        "",
        "Values outside the training range are accepted but are extrapolation.",
        "",
        "## Outputs",
        "",
        _outputs(signature),
        "",
        "## Files and integrity",
        "",
        *(f"- `{name}`: {_FILES[name]}" for name in files),
        "",
        "`manifest.json` records the sha256 and size of every other file. Before loading the "
        "model, `predict.py` checks each file against it and stops with exit code 2, naming "
        "the file, if one is missing or differs. This catches damaged and altered files; it "
        "does not prove where the bundle came from, since `manifest.json` could be replaced "
        "too: keep the sha256 of `manifest.json` from the release, or sign it.",
    ]
    if "model.ort" in manifest["files"]:
        lines += [
            "",
            "`model.ort` is the same model in ONNX Runtime's ORT format, for ONNX Runtime Mobile "
            "and minimal builds, which cannot read `.onnx` files. `predict.py` always uses "
            "`model.onnx`.",
        ]
    if card_md:
        lines += ["", "## Model card", "", _demote_headings(card_md)]
    return "\n".join(lines) + "\n"
