"""Reading a big text file a window at a time, with offsets into the whole text.

:meth:`ragkit.loaders.TextLoader.windows` uses this so that a file of any size is
indexed with memory bounded by the window, not the file. A first pass decodes the
whole file to choose the encoding exactly as :func:`~ragkit.loaders.text.decode_text`
would (a UTF-8 error at byte 150,000,000 must not be found after half the file is
indexed) and to reject binary or empty files; a second pass yields the windows.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ragkit.errors import LoaderError, NoTextError, UnsupportedFormatError
from ragkit.loaders.text import BOMS, SAMPLE, reject_binary
from ragkit.types import PageSpan

__all__ = ["WINDOW_CHARS", "TextScan", "scan_text", "text_windows", "window_pages"]

#: Characters per window (about): 4 Mi, a few tens of MB of working memory to chunk.
WINDOW_CHARS = 4 * 2**20
_BLOCK = 1 << 20
# Where a window may end, best first: after a blank line, a line, a space.
_CUTS = ("\n\n", "\n", " ")


@dataclass(frozen=True, slots=True)
class TextScan:
    """What the first pass learnt about a text file."""

    encoding: str
    bom_length: int
    form_feeds: bool


def scan_text(path: Path) -> TextScan:
    """Choose the encoding of the whole file, as ``decode_text`` does, by streaming it.

    Raises:
        UnsupportedFormatError: binary data, or a byte-order mark the bytes then break.
        NoTextError: the file is empty or only whitespace.
        LoaderError: the file cannot be read.
    """
    source = str(path)
    try:
        with path.open("rb") as file:
            head = file.read(SAMPLE)
            bom_length, encoding = 0, ""
            for bom, name in BOMS:
                if head.startswith(bom):
                    bom_length, encoding = len(bom), name
                    break
            if not encoding and b"\x00" in head:
                raise UnsupportedFormatError(
                    source,
                    "binary data, not text (NUL bytes and no UTF-16 byte-order mark); "
                    "if it is a document in another format, give it the right extension",
                )
            for candidate in (encoding,) if encoding else ("utf-8", "cp1252", "latin-1"):
                try:
                    form_feeds, has_text = _decode_all(file, bom_length, candidate, source)
                except UnicodeDecodeError as exc:
                    if encoding:
                        raise UnsupportedFormatError(
                            source,
                            f"starts with a {encoding} byte-order mark but is not valid "
                            f"{encoding} ({exc.reason}); re-save it as UTF-8",
                        ) from exc
                    continue
                if not has_text:
                    raise NoTextError(source, "the file is empty or holds only whitespace")
                return TextScan(candidate, bom_length, form_feeds)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LoaderError(
            source, f"cannot read the file: {reason}; check it exists and is readable"
        ) from exc
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _decode_all(file: BinaryIO, start: int, encoding: str, source: str) -> tuple[bool, bool]:
    """(has a form feed, has non-whitespace); raises UnicodeDecodeError when invalid."""
    file.seek(start)
    decoder = codecs.getincrementaldecoder(encoding)()
    form_feeds = has_text = checked = False
    while True:
        block = file.read(_BLOCK)
        text = decoder.decode(block, final=not block)
        if not checked and text:
            reject_binary(text[:SAMPLE], source)
            checked = True
        form_feeds = form_feeds or "\f" in text
        has_text = has_text or (bool(text) and not text.isspace())
        if not block:
            return form_feeds, has_text


def text_windows(
    path: Path, scan: TextScan, window: int = WINDOW_CHARS
) -> Iterator[tuple[int, str]]:
    """``(offset, text)`` windows that, joined, are the file's whole decoded text.

    A window ends after the last blank line, else line break, else space in its second
    half, so that chunk boundaries rarely fall at a window's edge; ``offset`` is the
    character offset of the window in the whole text (the byte-order mark excluded).
    """
    try:
        with path.open("rb") as file:
            file.seek(scan.bom_length)
            decoder = codecs.getincrementaldecoder(scan.encoding)()
            buffer, offset = "", 0
            while True:
                block = file.read(_BLOCK)
                buffer += decoder.decode(block, final=not block)
                start = 0  # windows are cut from ``buffer`` by index, copied once
                while len(buffer) - start >= window:
                    cut = _cut_point(buffer, start, window)
                    yield offset, buffer[start:cut]
                    offset, start = offset + cut - start, cut
                buffer = buffer[start:]
                if not block:
                    break
            if buffer:
                yield offset, buffer
    except UnicodeDecodeError as exc:  # the file changed since it was scanned
        raise LoaderError(
            str(path), f"changed while being read ({exc.reason}); index it again"
        ) from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LoaderError(str(path), f"cannot read the file: {reason}") from exc


def _cut_point(buffer: str, start: int, window: int) -> int:
    """Where the window of ``buffer`` that begins at ``start`` ends."""
    for separator in _CUTS:
        at = buffer.rfind(separator, start + window // 2, start + window)
        if at >= 0:
            return at + len(separator)
    return start + window


def window_pages(text: str, first: int) -> tuple[tuple[PageSpan, ...], int]:
    """Form-feed pages of one window, numbered from ``first``; and the next number.

    The window's first page may have begun in the window before: it keeps that number.
    """
    pages: list[PageSpan] = []
    start, number = 0, first
    while (end := text.find("\f", start)) >= 0:
        pages.append(PageSpan(number, start, end))
        start, number = end + 1, number + 1
    pages.append(PageSpan(number, start, len(text)))
    return tuple(pages), number
