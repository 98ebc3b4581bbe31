"""The audits ``mlcycle audit`` runs, one :class:`Part` per kind.

A part runs its audit, turns the result into its JSON document, reads the
gate's figures and the card's blocks back from that document (so a stored
audit serves the gate and the card as well as a fresh one), and renders the
result's report sections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcycle.evaluate._figures import Figures
    from mlcycle.project import Project

__all__ = ["PARTS", "Part"]

Block = str | list[list[str]]


@dataclass(frozen=True)
class Part:
    heading: str  # the model card's section
    run: Callable[[Project, str, dict[str, Any]], Any]
    document: Callable[[Any], dict[str, Any]]
    figures: Callable[[dict[str, Any]], dict[str, dict[str, float]]]
    card_blocks: Callable[[dict[str, Any]], list[Block]]
    sections: Callable[[Any, Figures], list[str]]


PARTS: dict[str, Part] = {}
