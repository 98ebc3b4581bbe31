"""Self-contained HTML pages: the shared frame of every mlcycle report.

One stylesheet, escaping, number formatting, tables and sections, and an
atomic write (temporary file, fsync, rename) so a reader never sees half a
page. Figures come from :class:`mlcycle.evaluate._figures.Figures`.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle import _system

__all__ = ["CSS", "esc", "fmt", "html_page", "section", "table", "write_page"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
background:#f5f7fa;color:#1f2933;line-height:1.45}
main{max-width:1120px;margin:0 auto;padding:24px}
h1{font-size:1.6rem;margin:0 0 4px}
h2{font-size:1.15rem;margin:0 0 12px}
section{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:16px 20px;margin:16px 0}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eef0f2;vertical-align:top}
th{color:#52606d;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.note{color:#616e7c;font-size:.85rem;margin:8px 0 0}
code{font-size:.85rem;word-break:break-all}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "—" if math.isnan(value) else f"{float(value):.4f}"
    return json.dumps(value, sort_keys=True, default=str)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, text: Sequence[int] = ()) -> str:
    """An HTML table; the first column is a label, the others right-aligned numbers.

    Columns whose index is in ``text`` hold prose: left-aligned and wrapped.
    """

    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(
            f'<{tag} class="num">{esc(v)}</{tag}>'
            if i and i not in text
            else f"<{tag}>{esc(v)}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def section(heading: str, body: str) -> str:
    return f"<section><h2>{esc(heading)}</h2>{body}</section>"


def write_page(path: Path, text: str) -> None:
    """Write a page whole (see :func:`mlcycle._system.write_atomic`), its folder made if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _system.write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), sync=True)


def html_page(title: str, subtitle_html: str, parts: Sequence[str]) -> str:
    """A whole page: ``title``, a line of (already escaped) HTML under it, then the sections."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{esc(title)}</h1>{subtitle_html}</header>\n"
        + "\n".join(parts)
        + "\n</main>\n</body>\n</html>\n"
    )
