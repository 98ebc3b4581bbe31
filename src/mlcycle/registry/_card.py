"""The model card of a version, in Markdown and in HTML, from the same facts.

Sections follow the usual model-card outline (intended use, training data,
metrics with confidence intervals, limitations); fairness and robustness have
their sections from the start and say plainly that they are not yet audited
until the audit stages fill them.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcycle.store import DatasetVersionRecord

__all__ = ["Card", "build_card", "dataset_facts"]

Table = list[list[str]]
Section = tuple[str, list[str | Table]]


class Card:
    """Sections of text paragraphs and tables, rendered as Markdown or HTML."""

    def __init__(self, title: str, sections: list[Section]) -> None:
        self.title = title
        self.sections = sections

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for heading, blocks in self.sections:
            out += [f"## {heading}", ""]
            for block in blocks:
                if isinstance(block, str):
                    out += [block, ""]
                else:
                    header, *rows = block
                    out.append("| " + " | ".join(header) + " |")
                    out.append("|" + "|".join(" --- " for _ in header) + "|")
                    out += ["| " + " | ".join(row) + " |" for row in rows]
                    out.append("")
        return "\n".join(out)

    def html(self) -> str:
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for heading, blocks in self.sections:
            body.append(f"<h2>{e(heading)}</h2>")
            for block in blocks:
                if isinstance(block, str):
                    body.append(f"<p>{e(block)}</p>")
                else:
                    header, *rows = block
                    head = "".join(f"<th>{e(c)}</th>" for c in header)
                    cells = "".join(
                        "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows
                    )
                    body.append(
                        f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"
                    )
        style = (
            "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
            "padding:0 1rem;color:#1f2933}table{border-collapse:collapse;margin:.5rem 0}"
            "th,td{border-bottom:1px solid #d9e2ec;padding:.3rem .8rem;text-align:left}"
            "h2{margin-top:2rem;border-bottom:2px solid #d9e2ec}"
        )
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{e(self.title)}</title><style>{style}</style></head><body>"
            + "".join(body)
            + "</body></html>"
        )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def describe_parity(parity: dict[str, Any]) -> str:
    """The parity check's result in words, saying what its tolerance is relative to.

    Regression values agree within 1e-4 *relative to* ``max(1, |value|)``, so
    an absolute difference of 0.001 on values near 300 passes: the sentence
    says so instead of quoting the absolute difference against "1e-4".
    ``native`` names what the graph was checked against (default PyTorch;
    ``LightGBM`` for a gbm).

    Example:
        >>> describe_parity({"rows": 45, "max_abs_diff": 3e-7, "labels_identical": True,
        ...                  "tolerance": 1e-4})
        'ONNX Runtime matches PyTorch on 45 test rows: probabilities within 3e-07 (tolerance 0.0001), labels identical'
    """
    rows = parity.get("rows", "?")
    if parity.get("reference"):  # a compressed variant: no PyTorch graph of its own
        agree = parity.get("label_agreement")
        largest = parity.get("max_abs_diff")
        what = (
            f"the same label on {agree:.1%} of {rows} test rows, probabilities within {largest:.2g}"
            if agree is not None and largest is not None
            else f"values within {parity.get('max_rel_diff', 0):.2g} of max(1, |value|) on {rows} test rows"
        )
        return f"No PyTorch graph of its own (a compressed variant): it answers like {parity['reference']}: {what}"
    if parity.get("checked") is False:  # an imported ONNX graph: nothing native to ask
        return f"Imported as ONNX: not checked against the model it came from ({parity.get('why')})"
    tolerance = parity.get("tolerance", 1e-4)
    head = f"ONNX Runtime matches {parity.get('native') or 'PyTorch'} on {rows} test rows: "
    largest = parity.get("max_abs_diff")
    if parity.get("labels_identical") is None:  # regression
        relative = parity.get("max_rel_diff")
        absolute = "?" if largest is None else f"{largest:.2g}"
        if relative is None:  # recorded before the relative difference was
            return (
                head + f"largest absolute difference {absolute} (the tolerance, {tolerance:g}, "
                "is relative to max(1, |value|))"
            )
        return (
            head + f"values within {relative:.2g} of max(1, |value|) (tolerance {tolerance:g}, "
            f"relative); largest absolute difference {absolute}"
        )
    within = "?" if largest is None else f"{largest:.2g}"
    return head + f"probabilities within {within} (tolerance {tolerance:g}), labels identical"


def dataset_facts(dataset: DatasetVersionRecord, split: Any) -> dict[str, Any]:
    """What a card says of the dataset version a model learned from (``split``: as trained)."""
    return {
        "ref": dataset.ref,
        "source": dataset.source,
        "rows": dataset.n_rows,
        "split": split,
        "fingerprint": dataset.fingerprint,
        "warnings": dataset.profile.get("warnings", []),
    }


def build_card(
    *,
    name: str,
    run_id: str | None,
    task: str,
    description: str | None,
    dataset: dict[str, Any],
    metrics: dict[str, Any],
    signature: dict[str, Any],
    lineage: dict[str, Any],
    audits: dict[str, list[str | Table]] | None = None,
) -> Card:
    """A card from what registration knows; nothing in it is invented.

    ``audits`` fills the Explainability, Fairness and Robustness sections
    (``mlcycle audit`` rewrites the card with them); a section no audit has
    filled says so.
    """
    audited = audits or {}

    def audit(section: str, flag: str) -> tuple[str, list[str | Table]]:
        return section, audited.get(section) or [
            f"Not yet audited: no {section.lower()} audit has been run for this version "
            f"(mlcycle audit {name}@VERSION --{flag})."
        ]

    classes = signature.get("classes") or []
    intended: list[str | Table] = [
        description
        or (
            f"Predicts {signature.get('target') or 'the target'} ({task}"
            + (f": {', '.join(classes)}" if classes else "")
            + ") from the input columns listed below. State the intended users and uses "
            "here when registering (--description)."
        )
    ]
    data_rows: Table = [["fact", "value"]]
    data_rows += [
        ["dataset version", str(dataset.get("ref"))],
        ["source", str(dataset.get("source"))],
        ["rows", str(dataset.get("rows"))],
        ["split (train / validation / test)", str(dataset.get("split"))],
        ["fingerprint", str(dataset.get("fingerprint"))[:16] + "…"],
    ]
    headline: Table = [["metric (held-out test rows)", "value", "95% CI"]]
    ci = metrics.get("test_ci", {})
    for key, value in (metrics.get("test") or {}).items():
        bounds = ci.get(key) or {}
        interval = (
            f"{bounds['low']:.4f} to {bounds['high']:.4f}"
            if bounds.get("low") is not None and bounds.get("high") is not None
            else "-"
        )
        headline.append([key, _fmt(value), interval])
    per_class = (metrics.get("test_metrics") or {}).get("per_class") or {}
    blocks: list[str | Table] = [headline]
    if per_class:
        table: Table = [["class", "precision", "recall", "f1", "support"]]
        for cls, m in per_class.items():
            table.append(
                [
                    cls,
                    _fmt(m.get("precision")),
                    _fmt(m.get("recall")),
                    _fmt(m.get("f1")),
                    _fmt(m.get("support")),
                ]
            )
        blocks.append(table)
    inputs: Table = [["input", "kind", "shape", "training range or categories"]]
    for spec in signature["inputs"]:
        if spec.get("range"):
            seen = f"{spec['range'][0]:.4g} to {spec['range'][1]:.4g}"
        elif spec.get("categories") is not None:
            cats = spec["categories"]
            seen = ", ".join(cats[:8]) + (f" (+{len(cats) - 8})" if len(cats) > 8 else "")
        else:
            seen = "-"
        inputs.append([spec["name"], spec["kind"], str(spec["shape"]), seen])
    limitations = [
        "Evaluated on one held-out split of one dataset version; performance on data "
        "that drifts from it is unknown until monitoring measures it.",
        "Inputs outside the training ranges above are extrapolation; unseen categories "
        "are treated as missing.",
    ]
    limitations += [str(w) for w in metrics.get("warnings", [])]
    limitations += [str(w) for w in dataset.get("warnings", [])]
    lineage_rows: Table = [["what", "value"]]
    derived = lineage.get("derived_from")
    if derived:
        lineage_rows.append(
            [
                "derived from",
                f"{derived.get('model')}@{derived.get('version')} by {derived.get('method')} "
                f"{derived.get('params') or ''}".strip(),
            ]
        )
    imported = lineage.get("imported")
    if imported:
        lineage_rows.append(
            [
                "imported",
                f"trained outside mlcycle: {imported.get('format')} ({imported.get('source')}), "
                f"sha256 {imported.get('sha256')}",
            ]
        )
        if imported.get("mapping"):
            lineage_rows.append(["inputs", str(imported["mapping"])])
    for key in ("run", "dataset", "spec_sha256", "git", "packages"):
        if key in lineage:
            lineage_rows.append([key, str(lineage[key])])
    compression = metrics.get("compression")
    if compression:
        size, parent_size = compression.get("size_bytes"), compression.get("parent_size_bytes")
        blocks.append(
            [
                ["compression", "value"],
                ["method", str(compression.get("method"))],
                ["size", f"{size:,} bytes ({size / max(parent_size, 1):.0%} of the parent's)"],
                ["latency (ms, median, by batch)", str(compression.get("latency_ms"))],
                ["against the parent", str(compression.get("verdict"))],
            ]
        )
    parity = metrics.get("parity", {})
    return Card(
        f"Model card: {name}"
        + (f" (run {run_id[:8]})" if run_id else "")
        + (" (imported)" if lineage.get("imported") else ""),
        [
            ("Intended use", intended),
            ("Training data", [data_rows]),
            ("Inputs", [inputs]),
            ("Metrics", blocks),
            (
                "Export",
                [describe_parity(parity) + "."],
            ),
            ("Limitations", [*limitations]),
            audit("Explainability", "explain"),
            audit("Fairness", "fairness"),
            audit("Robustness", "robustness"),
            ("Lineage", [lineage_rows]),
        ],
    )
