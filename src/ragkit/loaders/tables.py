"""Tables as text that keeps its structure: one line per row, each value with its header.

A table flattened into a run of cells (``State Checks Texas 1,204 Ohio 873``) cannot
answer "how many checks in Texas?": the number has lost its row and its column. Written
as ``State: Texas | Checks: 1,204``, the row holds both names, so BM25 and embeddings
find it, the sentence splitter quotes it alone, and a citation points at exactly it.

Both the HTML loader (``<table>``) and the PDF loader (pdfplumber, ``tables=True``)
build a grid of cell strings and hand it to :func:`table_lines`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TABLE_CELL_SEPARATOR", "Table", "table_lines"]

#: Between two cells of a row. The sentence splitter treats each row as a sentence.
TABLE_CELL_SEPARATOR = " | "

_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"[-+−]?[$€£¥]?\s*[\d.,\s%]+[kKmMbB%]?")
#: Years head columns often ("2023 | 2024"); as labels they are not data.
_YEAR = re.compile(r"(?:19|20)\d\d")
#: A header label longer than this is more likely a paragraph of a layout table.
_MAX_LABEL = 60


@dataclass(frozen=True, slots=True)
class Table:
    """A table read from a document: its caption, header names and data rows.

    Attributes:
        caption: the table's caption or title, if any ("" otherwise).
        header: one name per column ("" for a column without a name); empty when the
            table has no header row.
        rows: the data rows, every cell a string with its whitespace collapsed.
    """

    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def clean_cell(value: str | None) -> str:
    """A cell's text on one line: runs of whitespace (newlines too) become one space."""
    return _SPACES.sub(" ", value or "").strip()


def _is_label(cell: str) -> bool:
    if not cell or len(cell) > _MAX_LABEL:
        return False
    return not _NUMBER.fullmatch(cell) or bool(_YEAR.fullmatch(cell))


def looks_like_header(row: Sequence[str]) -> bool:
    """A first row of short, non-numeric labels in every cell, as a header row is (the
    top-left corner may be empty, above a column of row names)."""
    labels = row[1:] if row and not row[0] else row
    return len(labels) >= 2 and all(_is_label(cell) for cell in labels)


def make_table(
    grid: Sequence[Sequence[str | None]], header_rows: int | None = None, caption: str = ""
) -> Table | None:
    """A :class:`Table` from a grid of cells (None for a cell that holds nothing).

    Args:
        grid: rows of cells, top to bottom; rows may differ in length.
        header_rows: how many leading rows are headers (HTML ``<th>``/``<thead>``); None
            to guess: the first row is the header when every cell is a short label.
            Several header rows are joined per column ("2024" over "Q1": "2024 Q1").
        caption: the table's caption.

    Returns:
        None when no cell holds any text.
    """
    rows = [[clean_cell(c) for c in row] for row in grid]
    rows = [row for row in rows if any(row)]
    if not rows:
        return None
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    keep = [c for c in range(width) if any(row[c] for row in rows)]
    rows = [[row[c] for c in keep] for row in rows]
    if header_rows is None:
        header_rows = 1 if len(rows) > 1 and looks_like_header(rows[0]) else 0
    header_rows = min(header_rows, len(rows))
    names: list[str] = []
    for column in range(len(keep)):
        parts: list[str] = []
        for row in rows[:header_rows]:
            if row[column] and row[column] not in parts:  # a spanned group label once
                parts.append(row[column])
        names.append(" ".join(parts))
    return Table(
        caption=clean_cell(caption),
        header=_unique(names) if header_rows else (),
        rows=tuple(tuple(row) for row in rows[header_rows:]),
    )


def _unique(names: list[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name and name in seen:
            seen[name] += 1
            out.append(f"{name} ({seen[name]})")
        else:
            seen[name] = 1
            out.append(name)
    return tuple(out)


def row_text(header: Sequence[str], row: Sequence[str]) -> str:
    """``Name: value | Name: value`` for the non-empty cells of ``row`` (bare values
    where a column has no name, or the table no header)."""
    parts = []
    for index, value in enumerate(row):
        if not value:
            continue
        name = header[index] if index < len(header) else ""
        parts.append(f"{name}: {value}" if name and name != value else value)
    return TABLE_CELL_SEPARATOR.join(parts)


def table_lines(table: Table) -> list[str]:
    """The table as lines of text: its caption (if any), then one line per data row.

    A table made only of a header (no data rows) gives its header names as one line.
    """
    lines = [table.caption] if table.caption else []
    rows = [line for row in table.rows if (line := row_text(table.header, row))]
    if not rows and table.header:
        rows = [TABLE_CELL_SEPARATOR.join(name for name in table.header if name)]
    return lines + rows
