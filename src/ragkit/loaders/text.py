"""Plain text files, decoded robustly, with form feeds as page breaks.

Also home of the byte-decoding helpers that the other text-based loaders share.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ragkit.errors import ConfigurationError, LoaderError, NoTextError, UnsupportedFormatError
from ragkit.types import Document, PageSpan

if TYPE_CHECKING:
    from ragkit.loaders.text_stream import TextScan

__all__ = ["MAX_FILE_BYTES", "TextLoader", "decode_text", "read_bytes", "reject_binary"]

#: The largest file ``load`` reads whole (the loaders hold a file's text in memory to
#: keep exact offsets). A larger file is reported as failed, with its size, instead of
#: risking running out of memory. The indexer reads plain text files of any size
#: through :meth:`TextLoader.windows` instead, a window at a time.
MAX_FILE_BYTES = 32 * 1024 * 1024

# Checked in this order: the UTF-32 LE mark starts with the UTF-16 LE one.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
SAMPLE = 8192
#: Control characters that ordinary text contains (tab, newlines, form feed, escape).
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_MAX_CONTROL_SHARE = 0.1


def read_bytes(path: Path, max_bytes: int | None = MAX_FILE_BYTES) -> bytes:
    """The file's content, or a :class:`LoaderError` that says why it can't be read.

    Files over ``max_bytes`` (``None``: no limit) fail without being read.
    """
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise LoaderError(
                    str(path),
                    f"is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit "
                    "for one file of this format (its text would be held in memory); split "
                    "it into smaller files, or save it as plain text (.txt), which is "
                    "indexed a window at a time whatever its size",
                )
            data = file.read(max_bytes + 1 if max_bytes is not None else -1)
            if max_bytes is not None and len(data) > max_bytes:  # grew while reading
                raise LoaderError(str(path), "grew past the size limit while being read")
            return data
    except IsADirectoryError as exc:
        raise LoaderError(str(path), "is a directory, not a file; use walk() on it") from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LoaderError(
            str(path), f"cannot read the file: {reason}; check it exists and is readable"
        ) from exc


def decode_text(data: bytes, source: str) -> tuple[str, str]:
    """Decode ``data`` and name the encoding used.

    A byte-order mark wins; otherwise UTF-8, then cp1252, then latin-1 (which never
    fails). The byte-order mark is not part of the returned text.

    Raises:
        UnsupportedFormatError: the bytes look like binary data, not text.
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                text = body.decode(encoding)
            except UnicodeDecodeError as exc:
                raise UnsupportedFormatError(
                    source,
                    f"starts with a {encoding} byte-order mark but is not valid {encoding} "
                    f"({exc.reason} at byte {exc.start + len(bom)}); re-save it as UTF-8",
                ) from exc
            reject_binary(text[:SAMPLE], source)
            return text, encoding
    if b"\x00" in data[:SAMPLE]:
        raise UnsupportedFormatError(
            source,
            "binary data, not text (NUL bytes and no UTF-16 byte-order mark); "
            "if it is a document in another format, give it the right extension",
        )
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        reject_binary(text[:SAMPLE], source)
        return text, encoding
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def reject_binary(sample: str, source: str) -> None:
    """Raise :class:`UnsupportedFormatError` when ``sample`` is mostly control characters."""
    if not sample:
        return
    controls = sum(1 for ch in sample if _is_control(ch))
    if controls / len(sample) > _MAX_CONTROL_SHARE:
        raise UnsupportedFormatError(
            source,
            f"binary data, not text ({controls} control characters in the first "
            f"{len(sample)}); if it is a document in another format, give it the right "
            "extension",
        )


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 or code == 0x7F) and ch not in _TEXT_CONTROLS


def form_feed_pages(text: str) -> tuple[PageSpan, ...]:
    """One span per form-feed-separated page; empty when ``text`` has no form feed.

    The form feed itself lies between two spans. Whitespace after the last form feed
    (the usual trailing newline) is not a page of its own.
    """
    if "\f" not in text:
        return ()
    pages: list[PageSpan] = []
    start = 0
    while True:
        end = text.find("\f", start)
        if end < 0:
            if text[start:].strip():
                pages.append(PageSpan(len(pages) + 1, start, len(text)))
            return tuple(pages)
        pages.append(PageSpan(len(pages) + 1, start, end))
        start = end + 1


class TextLoader:
    """Loads a plain text file as one document; the indexer streams big ones.

    The encoding is found from a byte-order mark (UTF-8, UTF-16, UTF-32), else UTF-8 is
    tried, then cp1252 and latin-1; ``metadata["encoding"]`` names the one used. Text
    with form feeds (``\\f``, as in RFCs) gets one :class:`~ragkit.types.PageSpan` per
    page; the form feeds stay in the text.

    A file larger than ``window`` bytes is read by :meth:`windows` (which the indexer
    calls first) a window of about ``window`` characters at a time, cut after a blank
    line, a line or a space, so indexing it takes memory for one window whatever the
    file's size; chunk offsets still count from the start of the whole file.

    Example:
        >>> docs = TextLoader().load(Path("rfc2616.txt"))  # doctest: +SKIP
        >>> docs[0].pages[0].number  # doctest: +SKIP
        1

    Args:
        max_bytes: ``load`` fails on larger files with a :class:`~ragkit.errors.LoaderError`
            that gives their size (default :data:`MAX_FILE_BYTES`); ``None`` for no limit.
        window: files over this many bytes are streamed by :meth:`windows`, in windows
            of about this many characters (default 4 Mi).
    """

    def __init__(self, max_bytes: int | None = MAX_FILE_BYTES, window: int | None = None) -> None:
        from ragkit.loaders.text_stream import WINDOW_CHARS

        self.max_bytes = max_bytes
        self.window = window if window is not None else WINDOW_CHARS
        if self.window < 64:
            raise ConfigurationError(f"window must be at least 64 characters, got {self.window}")

    def load(self, path: Path) -> list[Document]:
        """Read ``path`` as one document.

        Raises:
            UnsupportedFormatError: the file holds binary data.
            NoTextError: the file is empty or only whitespace.
            LoaderError: the file cannot be read.
        """
        source = str(path)
        text, encoding = decode_text(read_bytes(path, self.max_bytes), source)
        if not text.strip():
            raise NoTextError(source, "the file is empty or holds only whitespace")
        metadata = {"format": "text", "encoding": encoding}
        return [Document(text=text, source=source, metadata=metadata, pages=form_feed_pages(text))]

    def windows(self, path: Path) -> Iterator[tuple[int, Document]] | None:
        """``path`` as windows of one document, or None when it is small enough to ``load``.

        Each item is ``(offset, document)``: ``document.text`` is the characters
        ``offset`` to ``offset + len(document.text)`` of the whole text (windows follow
        each other without gap), its ``id`` and ``source`` are those of the whole file,
        and its pages (when the text has form feeds) are numbered as in the whole file.
        The file is checked (encoding, binary, empty) before the first window.

        Raises:
            UnsupportedFormatError: the file holds binary data.
            NoTextError: the file is empty or only whitespace.
            LoaderError: the file cannot be read (also while iterating, if it changes).
        """
        from ragkit.loaders.text_stream import scan_text

        try:
            size = path.stat().st_size
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise LoaderError(str(path), f"cannot read the file: {reason}") from exc
        if size <= self.window:
            return None
        return self._windows(path, scan_text(path))

    def _windows(self, path: Path, scan: TextScan) -> Iterator[tuple[int, Document]]:
        from ragkit.loaders.text_stream import text_windows, window_pages

        source, page = str(path), 1
        metadata = {"format": "text", "encoding": scan.encoding}
        for offset, text in text_windows(path, scan, self.window):
            pages: tuple[PageSpan, ...] = ()
            if scan.form_feeds:
                pages, page = window_pages(text, page)
            yield offset, Document(text=text, source=source, metadata=metadata, pages=pages)
