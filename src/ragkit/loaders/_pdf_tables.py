"""Ruled tables of PDF pages through pdfplumber, for :class:`~ragkit.loaders.PdfLoader`.

A page with tables is read again with pdfplumber: the text around the tables, in bands
cut at each table's top edge, and each table as the rows of
:func:`ragkit.loaders.tables.table_lines`. Pages without tables keep pypdf's text.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from ragkit._deps import require
from ragkit.loaders.tables import Table, make_table, table_lines

__all__ = ["TablePages", "read_table_pages"]

logger = logging.getLogger(__name__)

#: Text of the pages that hold tables (1-based page number -> text), how many tables
#: each holds, and what failed.
TablePages = tuple[dict[int, str], dict[int, int], list[str]]


def _inside(obj: dict[str, Any], boxes: list[tuple[float, float, float, float]]) -> bool:
    """Whether the centre of a page object lies in one of the table boxes."""
    x = (float(obj.get("x0", 0)) + float(obj.get("x1", 0))) / 2
    y = (float(obj.get("top", 0)) + float(obj.get("bottom", 0))) / 2
    return any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)


def _is_table(table: Table) -> bool:
    """Two columns and two rows at least: a ruled box around a paragraph is no table."""
    width = max([len(table.header), *(len(row) for row in table.rows)])
    height = len(table.rows) + (1 if table.header else 0)
    return width >= 2 and height >= 2


def _band(page: Any, top: float, bottom: float) -> str:
    part = page.filter(lambda obj: top <= float(obj.get("top", 0)) < bottom)
    return str(part.extract_text() or "").strip("\n")


def page_text(page: Any) -> tuple[str, int] | None:
    """The page's text with its tables as rows, and how many tables; None without any."""
    found: list[tuple[tuple[float, float, float, float], Table]] = []
    for candidate in page.find_tables():
        parsed = make_table(candidate.extract())
        if parsed is not None and _is_table(parsed):
            found.append((candidate.bbox, parsed))
    if not found:
        return None
    found.sort(key=lambda item: item[0][1])
    boxes = [bbox for bbox, _ in found]
    rest = page.filter(lambda obj: not _inside(obj, boxes))
    parts: list[str] = []
    above = float("-inf")
    for bbox, parsed in found:
        parts.append(_band(rest, above, bbox[1]))
        parts.append("\n".join(table_lines(parsed)))
        above = bbox[1]
    parts.append(_band(rest, above, float("inf")))
    return "\n\n".join(part for part in parts if part.strip()), len(found)


def read_table_pages(data: bytes, password: str | None, source: str) -> TablePages:
    """Find the ruled tables of every page of the PDF ``data``.

    Raises:
        MissingDependencyError: pdfplumber is not installed (extra ``tables``).
    """
    pdfplumber = require(
        "pdfplumber", extra="tables", purpose="PdfLoader(tables=True)", package="pdfplumber"
    )
    texts: dict[int, str] = {}
    counts: dict[int, int] = {}
    errors: list[str] = []
    try:
        pdf = pdfplumber.open(io.BytesIO(data), password=password or "")
    except Exception as exc:  # pdfminer raises many types on files pypdf could read
        logger.debug("%s: pdfplumber cannot open the file", source, exc_info=True)
        return texts, counts, [f"tables: {type(exc).__name__}: {exc}"]
    with pdf:
        for page in pdf.pages:
            number = int(page.page_number)
            try:
                found = page_text(page)
            except Exception as exc:  # one bad page must not cost the others
                logger.debug("%s: page %d: table extraction failed", source, number, exc_info=True)
                errors.append(f"page {number} tables: {type(exc).__name__}: {exc}")
                continue
            finally:
                page.close()  # pdfplumber caches every parsed object per page
            if found is not None:
                texts[number], counts[number] = found
    return texts, counts, errors
