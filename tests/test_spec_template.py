"""The commented mlcycle.yaml that ``mlcycle init`` writes: complete, valid, commented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from mlcycle import Project
from mlcycle._spec_template import EXAMPLE_PREFIX, spec_template
from mlcycle.project import SPEC_FILE
from mlcycle.spec import ProjectSpec, Spec, load_spec

_FIELD_LINE = re.compile(r"^(\s*)([A-Za-z_][\w.]*):(.*)$")


@pytest.fixture
def written(tmp_path: Path) -> Iterator[Path]:
    with Project.init(tmp_path / "churn", name="churn") as project:
        yield project.root / SPEC_FILE


def _model(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The model a field holds and how: "direct", "dict" (its values) or "optional"."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "direct"
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, "dict" if get_origin(annotation) is dict else "optional"
    return None, ""


def _examples(text: str) -> dict[str, Any]:
    """Each example block, uncommented and parsed, by the field it follows."""
    out: dict[str, Any] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        block = []
        indent = len(line) - len(line.lstrip())
        for nxt in lines[i + 1 :]:
            if not nxt.startswith(" " * indent + EXAMPLE_PREFIX):
                break
            block.append(nxt[indent + len(EXAMPLE_PREFIX) :])
        if block and not line.lstrip().startswith("#"):
            out.update(yaml.safe_load("\n".join(block)))
    return out


def test_the_written_spec_parses_to_exactly_the_default_spec(written: Path) -> None:
    assert load_spec(written) == Spec(project=ProjectSpec(name="churn"))
    assert spec_template("x") != spec_template("y")


def test_every_field_of_every_section_is_written(written: Path) -> None:
    text = written.read_text()
    loaded = yaml.safe_load(text)
    examples = _examples(text)
    seen: list[str] = []

    def walk(model: type[BaseModel], node: dict[str, Any], path: str) -> None:
        assert set(node) == set(model.model_fields), path
        for name, info in model.model_fields.items():
            seen.append(f"{path}{name}")
            nested, how = _model(info.annotation)
            if nested is None:
                continue
            if how == "direct":
                walk(nested, node[name], f"{path}{name}.")
                continue
            # a mapping of models or an optional one: written empty, shown by example
            assert node[name] in ({}, None), f"{path}{name}"
            example = examples[name]
            values = example.values() if how == "dict" else [example]
            for value in values:
                nested.model_validate(value)
                walk(nested, value, f"{path}{name}.*.")

    walk(Spec, loaded, "")
    assert {"train.model.kind", "loop.gate.audit.*.min", "data.datasets.*.split.seed"} <= set(seen)
    assert {
        "tune.space.*.choices",
        "monitor.columns.*.test",
        "loop.retrain.tune.*.n_trials",
    } <= set(seen)


def test_every_field_line_has_a_comment(written: Path) -> None:
    text = written.read_text()
    field_lines = [line for line in text.splitlines() if _FIELD_LINE.match(line) and ":" in line]
    assert len(field_lines) > 100
    for line in field_lines:
        if line.endswith(":") and _FIELD_LINE.match(line).group(1) == "":  # type: ignore[union-attr]
            continue  # a top-level section: its comment is the header above
        _head, sep, comment = line.partition("  # ")
        assert sep and len(comment.strip()) > 3, line
    # the comment says what the type allows, and the registries' names
    assert re.search(r"^    activation: relu +# .+$", text, re.M)
    assert "# allowed: relu | gelu | silu | tanh | leaky_relu" in text
    assert "# registered: " in text
    # sections carry a header comment
    for section in Spec.model_fields:
        before = text.split(f"\n{section}:\n", 1)[0].splitlines()
        assert before[-1].startswith("# "), section


def test_the_template_is_readable(written: Path) -> None:
    text = written.read_text()
    long = [line for line in text.splitlines() if len(line) > 120]
    assert all(line.lstrip().startswith("# allowed: ") for line in long), long
    assert re.search(r"^  model: +# which network", text, re.M)
    assert re.search(r"^    hidden: \[128, 64\] +# ", text, re.M)
    assert re.search(r"^  datasets: \{\} +# ", text, re.M)
    assert "#       source: sklearn:breast_cancer" in text
    # sibling comments are lined up
    columns = {
        line.index("  # ")
        for line in text.splitlines()
        if line.startswith("    ") and re.match(r"^    (dropout|hidden|init|options):", line)
    }
    assert len(columns) == 1
