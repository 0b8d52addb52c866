"""Small, valid PDFs written byte by byte, for tests of PDF loading (no PDF library).

Example:
    >>> from ragkit.testing.pdf import PdfPage, write_pdf
    >>> data = write_pdf([PdfPage(lines=("Checks by state",), table=(("State", "Checks"),
    ...                                                           ("Texas", "1,204")))])
    >>> data.startswith(b"%PDF-1.4")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PdfPage", "write_pdf"]

_TOP = 720
_LEFT = 72
_LINE = 16
_ROW = 20
_COLUMN = 130


@dataclass(frozen=True)
class PdfPage:
    """One page: lines of text, then optionally a table ruled on a full grid, then more
    lines below it.

    Attributes:
        lines: text lines at the top of the page, in Helvetica 12.
        table: rows of cells (the first row usually the header), drawn with a ruling
            line around every cell, in Helvetica 10.
        after: text lines below the table.
    """

    lines: Sequence[str] = ()
    table: Sequence[Sequence[str]] = ()
    after: Sequence[str] = ()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _text(x: float, y: float, size: int, text: str) -> str:
    return f"BT /F1 {size} Tf {x:.1f} {y:.1f} Td ({_escape(text)}) Tj ET\n"


def _content(page: PdfPage) -> bytes:
    ops: list[str] = []
    y = float(_TOP)
    for line in page.lines:
        ops.append(_text(_LEFT, y, 12, line))
        y -= _LINE
    if page.table:
        y -= _LINE
        columns = max(len(row) for row in page.table)
        top = y
        bottom = top - _ROW * len(page.table)
        right = _LEFT + _COLUMN * columns
        ops.append("0.5 w\n")
        for r in range(len(page.table) + 1):
            ops.append(f"{_LEFT} {top - r * _ROW:.1f} m {right} {top - r * _ROW:.1f} l S\n")
        for c in range(columns + 1):
            ops.append(
                f"{_LEFT + c * _COLUMN} {top:.1f} m {_LEFT + c * _COLUMN} {bottom:.1f} l S\n"
            )
        for r, row in enumerate(page.table):
            for c, cell in enumerate(row):
                ops.append(_text(_LEFT + c * _COLUMN + 4, top - (r + 1) * _ROW + 6, 10, cell))
        y = bottom - 2 * _LINE
    for line in page.after:
        ops.append(_text(_LEFT, y, 12, line))
        y -= _LINE
    return "".join(ops).encode("latin-1")


def write_pdf(pages: Sequence[PdfPage]) -> bytes:
    """The bytes of a PDF with ``pages`` (US Letter, Helvetica, ruled tables)."""
    count = len(pages)
    font = 3 + 2 * count
    objects: dict[int, bytes] = {1: b"<< /Type /Catalog /Pages 2 0 R >>"}
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(count))
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode()
    for i, page in enumerate(pages):
        number, content = 3 + 2 * i, 4 + 2 * i
        objects[number] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
        ).encode()
        stream = _content(page)
        objects[content] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    objects[font] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in sorted(objects))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
