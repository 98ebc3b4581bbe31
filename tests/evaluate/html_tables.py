"""Read the tables of a report section back from its HTML, as a browser would see the cells."""

from __future__ import annotations

from html.parser import HTMLParser


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[list[list[str]]]] = {}
        self._heading: str | None = None
        self._in_h2 = False
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self._in_h2, self._heading = True, ""
        elif tag == "table" and self._heading is not None:
            self.sections.setdefault(self._heading, []).append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._heading in self.sections:
            self.sections[self._heading][-1].append(self._row)
            self._row = None
        elif tag == "section":
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._in_h2 and self._heading is not None:
            self._heading += data
        elif self._cell is not None:
            self._cell.append(data)


def section_tables(page: str, heading: str) -> list[list[list[str]]]:
    """The tables under ``<h2>heading</h2>``: each a list of rows, each a list of cell texts."""
    parser = _Sections()
    parser.feed(page)
    return parser.sections.get(heading, [])
