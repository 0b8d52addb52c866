"""Word ``.docx`` files via python-docx (the ``docx`` extra)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ragkit._deps import require
from ragkit.errors import LoaderError, NoTextError
from ragkit.types import Document, Heading

__all__ = ["DocxLoader"]

# Style ids are stable across UI languages ("Heading1" is "Überschrift 1" in German).
_HEADING_STYLE = re.compile(r"Heading ?([1-9])", re.IGNORECASE)
_BLOCK_SEPARATOR = "\n\n"


class DocxLoader:
    """Loads a Word document as one document.

    Paragraphs and tables come in body order, separated by a blank line; a table's
    cells are joined by ``" | "``, its rows by newlines. Paragraphs styled
    ``Heading N`` become :class:`~ragkit.types.Heading` entries of level N. The title is
    the document property, else the first ``Title``-styled paragraph, else the first
    level-1 heading. Headers, footers, comments and text boxes are not read.

    Needs python-docx: ``pip install "ragkit[docx]"``.

    Example:
        >>> doc = DocxLoader().load(Path("report.docx"))[0]  # doctest: +SKIP
        >>> [h.title for h in doc.headings]  # doctest: +SKIP
        ['Summary', 'Method', 'Results']
    """

    def load(self, path: Path) -> list[Document]:
        """Read ``path`` as one document.

        Raises:
            MissingDependencyError: python-docx is not installed.
            NoTextError: the document has no text.
            LoaderError: the file is not a readable .docx.
        """
        docx = require("docx", extra="docx", purpose="Reading .docx files", package="python-docx")
        source = str(path)
        try:
            document = docx.Document(str(path))
        except Exception as exc:  # python-docx raises zip, XML and key errors on bad files
            raise LoaderError(
                source,
                f"cannot be read as a .docx ({type(exc).__name__}: {exc}); re-save it "
                "from Word or LibreOffice as .docx (old .doc files are not supported)",
            ) from exc
        blocks: list[str] = []
        headings: list[Heading] = []
        offset = 0
        styled_title = ""
        for item in document.iter_inner_content():
            if hasattr(item, "rows"):
                text, level, style = _table_text(item), 0, ""
            else:
                text, style = item.text.strip(), _style_id(item)
                match = _HEADING_STYLE.fullmatch(style)
                level = int(match.group(1)) if match else 0
            if not text:
                continue
            if blocks:
                offset += len(_BLOCK_SEPARATOR)
            if level:
                headings.append(Heading(offset, level, " ".join(text.split())))
            if style.lower() == "title" and not styled_title:
                styled_title = " ".join(text.split())
            blocks.append(text)
            offset += len(text)
        if not blocks:
            raise NoTextError(source, "the document has no text (only images or empty)")
        metadata = {"format": "docx"}
        title = (document.core_properties.title or "").strip() or styled_title
        title = title or next((h.title for h in headings if h.level == 1), "")
        if title:
            metadata["title"] = title
        return [
            Document(
                text=_BLOCK_SEPARATOR.join(blocks),
                source=source,
                metadata=metadata,
                headings=tuple(headings),
            )
        ]


def _style_id(paragraph: Any) -> str:
    style = paragraph.style
    if style is None:
        return ""
    return str(style.style_id or style.name or "")


def _table_text(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells = [" ".join(cell.text.split()) for cell in row.cells]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
