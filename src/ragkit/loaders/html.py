"""HTML files: the visible text, block structure kept, with the h1-h6 headings."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

from ragkit.errors import NoTextError
from ragkit.loaders.tables import make_table, table_lines
from ragkit.loaders.text import decode_text, read_bytes
from ragkit.types import Document, Heading

__all__ = ["HtmlLoader", "html_to_text"]

#: Never visible, whatever their content.
_DROP = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "head", "iframe", "object",
     "canvas", "button", "select", "datalist"}
)  # fmt: skip
#: Largest rowspan/colspan honoured (browsers cap colspan at 1000, rowspan at 65534).
_MAX_SPAN = 1000
#: Site chrome when they belong to the page rather than to a piece of content.
_CHROME = frozenset({"header", "footer", "aside"})
_CONTENT = frozenset({"article", "main", "section"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
#: Block elements and the break they make: 1 = a newline, 2 = a blank line.
_BREAKS = {
    **dict.fromkeys(
        ["p", "pre", "blockquote", "ul", "ol", "dl", "table", "section", "article", "main",
         "figure", "hr", "address", "header", "footer", "aside", "details", "fieldset",
         "form", *_HEADINGS],
        2,
    ),
    **dict.fromkeys(
        ["div", "li", "dt", "dd", "tr", "caption", "figcaption", "summary", "br", "body",
         "html", "center", "legend", "option", "thead", "tbody", "tfoot"],
        1,
    ),
}  # fmt: skip
_CELLS = frozenset({"td", "th"})
_MARKS = frozenset({"¶", "§", "#", "🔗"})
# Browsers keep runs of no-break spaces; for search text they are just spaces.
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\n\r\f\xa0]+")


class _TextBuilder:
    """Accumulates inline text and emits it as blocks separated by line breaks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.inline: list[str] = []
        self.pre = 0  # depth of <pre> elements around the current text
        self.pending_break = 0
        self.headings: list[Heading] = []

    def text(self, value: str) -> None:
        self.inline.append(value if self.pre else _SPACES.sub(" ", value))

    def has_inline_text(self) -> bool:
        return any(part.strip() for part in self.inline)

    def flush(self, strength: int, heading_level: int = 0) -> None:
        """End the current block; ``strength`` is the break it asks for after it."""
        block = "".join(self.inline)
        self.inline = []
        # A block's text is collapsed already, unless preformatted; trim its edges.
        block = block.strip("\n\r") if self.pre else _SPACES.sub(" ", block).strip(" ")
        if block.strip():
            if self.parts:
                separator = "\n" * max(self.pending_break, 1)
                self.parts.append(separator)
                self.length += len(separator)
            if heading_level:
                indent = len(block) - len(block.lstrip())
                self.headings.append(Heading(self.length + indent, heading_level, block.strip()))
            self.parts.append(block)
            self.length += len(block)
            self.pending_break = 0
        self.pending_break = max(self.pending_break, strength)


def _is_hidden(tag: Any) -> bool:
    return bool(
        tag.has_attr("hidden")
        or tag.get("aria-hidden") == "true"
        or _is_permalink(tag)
        or _is_chrome(tag)
    )


def _is_permalink(tag: Any) -> bool:
    """A ``¶``-style link to the element itself (Sphinx, xml2rfc), noise in the text."""
    href = tag.get("href") if tag.name == "a" else None
    return isinstance(href, str) and href.startswith("#") and tag.get_text().strip() in _MARKS


def _is_chrome(tag: Any) -> bool:
    name = tag.name
    if name == "nav" or tag.get("role") in ("navigation", "banner", "contentinfo"):
        return True
    if name not in _CHROME:
        return False
    if tag.find_parent(_CONTENT) is not None:
        return False  # part of the content, e.g. an article's header or a note
    # A page-level header that holds the page's h1 is the document's title block.
    return not (name == "header" and tag.find("h1") is not None)


def html_to_text(soup: Any) -> tuple[str, tuple[Heading, ...]]:
    """The visible text of a parsed page and its headings (offsets into that text)."""
    from bs4.element import NavigableString, PreformattedString, Tag

    out = _TextBuilder()
    # An explicit stack instead of recursion: real pages nest deeper than the
    # recursion limit allows. A ``(name, level)`` tuple marks the end of an element.
    stack: list[Any] = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):  # closing an element
            name, level = node
            if name == "pre":
                out.flush(2)
                out.pre -= 1
            elif name in _BREAKS:
                out.flush(_BREAKS[name], level)
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, doctype, CDATA
                out.text(str(node))
            continue
        if not isinstance(node, Tag) or node.name in _DROP or _is_hidden(node):
            continue
        name = node.name
        if name == "table" and not out.pre:
            _emit_table(node, out)
            continue
        if name in _BREAKS:
            out.flush(_BREAKS[name])
        elif name in _CELLS and out.has_inline_text():
            out.text(" | ")
        if name == "pre":
            out.pre += 1
        stack.append((name, _HEADINGS.get(name, 0)))
        stack.extend(reversed(node.contents))
    out.flush(0)
    return "".join(out.parts), tuple(out.headings)


def _cell_text(cell: Any) -> str:
    """A cell's visible text on one line (nested blocks and tables included)."""
    return " ".join(html_to_text(cell)[0].split())


def _own_rows(table: Any) -> list[Any]:
    """The table's ``<tr>`` elements, not those of tables nested in its cells."""
    return [
        tr for tr in table.find_all("tr") if tr.find_parent("table") is table and not _is_hidden(tr)
    ]


def _span(cell: Any, name: str) -> int:
    try:
        return max(1, min(int(str(cell.get(name, 1)).strip() or 1), _MAX_SPAN))
    except ValueError:
        return 1


def _table_grid(table: Any) -> tuple[list[list[str | None]], int]:
    """The table's cells on a grid (a spanned cell's text in every slot it covers) and
    how many leading rows are headers (in ``<thead>``, or made only of ``<th>``)."""
    rows = _own_rows(table)
    grid: list[list[str | None]] = [[] for _ in rows]
    header_rows = 0
    counting = True
    for r, tr in enumerate(rows):
        cells = [c for c in tr.find_all(("td", "th"), recursive=False) if not _is_hidden(c)]
        in_head = tr.find_parent("thead") is not None
        if counting and cells and (in_head or all(c.name == "th" for c in cells)):
            header_rows += 1
        else:
            counting = False
        column = 0
        for cell in cells:
            while column < len(grid[r]) and grid[r][column] is not None:
                column += 1  # a slot taken by a rowspan from above
            text = _cell_text(cell)
            rowspan = min(_span(cell, "rowspan"), len(rows) - r)
            for dr in range(rowspan):
                line = grid[r + dr]
                for dc in range(_span(cell, "colspan")):
                    line.extend([None] * (column + dc + 1 - len(line)))
                    line[column + dc] = text
            column += _span(cell, "colspan")
    return grid, header_rows


def _emit_table(table: Any, out: _TextBuilder) -> None:
    """A ``<table>`` as its caption, then one ``Header: value | ...`` line per row."""
    out.flush(2)
    caption_tag = table.find("caption")
    caption = ""
    if caption_tag is not None and caption_tag.find_parent("table") is table:
        caption = _cell_text(caption_tag)
    grid, header_rows = _table_grid(table)
    parsed = make_table(grid, header_rows or None, caption)
    if parsed is None:
        return
    for line in table_lines(parsed):
        out.text(line)
        out.flush(1)
    out.flush(2)


def _decode(data: bytes, source: str) -> tuple[str, str]:
    """Decode by byte-order mark, else the ``<meta charset>``, else as text files are."""
    declared = _CHARSET.search(data[:4096])
    if declared and not data.startswith((codecs.BOM_UTF8, b"\xff\xfe", b"\xfe\xff")):
        try:
            encoding = codecs.lookup(declared.group(1).decode("ascii")).name
        except LookupError:
            pass  # an unknown charset name: guess as for text
        else:
            # A UTF-16 claim without a byte-order mark is stale (the file was re-saved).
            if not encoding.startswith("utf-16"):
                return data.decode(encoding, errors="replace"), encoding
    return decode_text(data, source)


class HtmlLoader:
    """Loads an HTML page as one document: its visible text, with headings.

    Scripts, styles, ``<nav>`` and page-level ``<header>``/``<footer>``/``<aside>``
    (site chrome) are dropped; the same elements inside ``<article>``, ``<main>`` or
    ``<section>`` are content and kept. Block elements start a new line (paragraphs,
    lists, tables and headings a blank line), whitespace inside a block collapses to
    one space, ``<pre>`` keeps its layout.

    A ``<table>`` becomes its caption, then one line per data row in which every value
    carries its column's header: ``State: Texas | Checks: 1,204``. Header rows are those
    in ``<thead>`` or made only of ``<th>`` (several are joined per column, "2024 Q1");
    without any, a first row of short labels is taken as the header. ``rowspan`` and
    ``colspan`` are honoured: a spanned cell's text stands in every row and column it
    covers. See ``docs/tables.md``.
    Each ``<h1>``..``<h6>`` becomes a :class:`~ragkit.types.Heading` at the offset
    where its text begins. The title comes from ``<title>``, else the first ``<h1>``.

    The encoding comes from a byte-order mark, else the page's ``<meta charset>``, else
    UTF-8 with a cp1252 fallback. Parsing uses BeautifulSoup's built-in
    ``html.parser``; no lxml needed.

    Example:
        >>> doc = HtmlLoader().load(Path("rfc9110.html"))[0]  # doctest: +SKIP
        >>> doc.metadata["title"]  # doctest: +SKIP
        'RFC 9110 - HTTP Semantics'
    """

    def load(self, path: Path) -> list[Document]:
        """Read ``path`` as one document.

        Raises:
            NoTextError: the page has no visible text (e.g. only scripts).
            LoaderError: the file cannot be read.
        """
        from bs4 import BeautifulSoup

        source = str(path)
        raw, encoding = _decode(read_bytes(path), source)
        soup = BeautifulSoup(raw, "html.parser")
        text, headings = html_to_text(soup)
        if not text.strip():
            raise NoTextError(
                source, "the page has no visible text (only scripts, styles or navigation)"
            )
        metadata = {"format": "html", "encoding": encoding}
        title_tag = soup.find("title")
        title = " ".join(title_tag.get_text().split()) if title_tag is not None else ""
        title = title or next((h.title for h in headings if h.level == 1), "")
        if title:
            metadata["title"] = title
        return [Document(text=text, source=source, metadata=metadata, headings=headings)]
