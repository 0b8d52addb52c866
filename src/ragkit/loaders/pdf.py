"""PDF files via pypdf: text per page, page spans and printed page labels."""

from __future__ import annotations

import io
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ragkit._deps import require
from ragkit.errors import LoaderError, NoTextError
from ragkit.loaders._pdf_tables import TablePages, read_table_pages
from ragkit.loaders.text import read_bytes
from ragkit.types import Document, PageSpan

__all__ = ["PAGE_SEPARATOR", "PdfLoader"]

logger = logging.getLogger(__name__)

#: Put between two pages' texts. A blank line, so that chunkers that split on
#: paragraphs also split at page breaks; it belongs to no page span.
PAGE_SEPARATOR = "\n\n"
_FILE_NAME = re.compile(r"[\w.~-]+\.[A-Za-z0-9]{1,4}")


class _Collector(logging.Handler):
    """Takes a library's log records while this thread loads a PDF; passes on the others."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        sink: Counter[str] | None = getattr(self.local, "sink", None)
        if sink is None:  # the library used elsewhere in the program: as if propagated
            logging.getLogger().handle(record)
        else:
            sink[record.getMessage()] += 1


class _Redirect:
    """Counts the loads in progress; the logger is redirected while any runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.saved_propagate = True
        self.collector = _Collector()


#: pypdf, and pdfminer (under pdfplumber, for tables).
_redirects = {"pypdf": _Redirect(), "pdfminer": _Redirect()}


@contextmanager
def _quiet(library: str, source: str) -> Iterator[None]:
    """Turn ``library``'s warnings while reading ``source`` into one DEBUG line each.

    pypdf and pdfminer log a WARNING for every quirk they repair (some files log
    hundreds), which would flood the terminal of a program that indexes many files.
    The messages are kept, counted, at DEBUG on this module's logger.
    """
    redirect = _redirects[library]
    library_logger = logging.getLogger(library)
    with redirect.lock:
        if redirect.users == 0:
            redirect.saved_propagate = library_logger.propagate
            library_logger.addHandler(redirect.collector)
            library_logger.propagate = False
        redirect.users += 1
    sink: Counter[str] = Counter()
    redirect.collector.local.sink = sink
    try:
        yield
    finally:
        redirect.collector.local.sink = None
        with redirect.lock:
            redirect.users -= 1
            if redirect.users == 0:
                library_logger.removeHandler(redirect.collector)
                library_logger.propagate = redirect.saved_propagate
        for message, count in sink.items():
            logger.debug("%s: %s warned %d time(s): %s", source, library, count, message)


class PdfLoader:
    """Loads a PDF as one document with a :class:`~ragkit.types.PageSpan` per page.

    The document text is the pages' texts joined by :data:`PAGE_SEPARATOR` (a blank
    line), so ``doc.text[p.start:p.end]`` is exactly the text of page ``p``. A page's
    ``label`` is its printed label (``"iv"``, ``"A-3"``) when the PDF defines
    ``/PageLabels``, else None.

    Pages without a text layer stay in the document as empty spans and are listed in
    ``metadata["pages_without_text"]``; when no page has text the file is refused
    with :class:`~ragkit.errors.NoTextError` (run OCR first). Pages whose extraction
    fails are listed there too, with the reason in ``metadata["page_errors"]``.

    With ``tables=True``, pages holding ruled tables are read with pdfplumber (extra
    ``tables``): the text around each table, then the table as one line per row in which
    every value carries its column's header (``State: Texas | Checks: 1,204``), so a
    question about a number finds its row and the citation quotes it.
    ``metadata["tables"]`` counts the tables found, ``metadata["table_pages"]`` lists
    their pages. Other pages keep pypdf's text. Only tables drawn with ruling lines are
    found; see ``docs/tables.md``.

    Args:
        password: opens encrypted PDFs; without it only an empty password is tried.
        tables: extract ruled tables as rows with pdfplumber (``pip install
            "ragkit[tables]"``); about four times slower than text alone.

    Example:
        >>> doc = PdfLoader().load(Path("rfc2616.pdf"))[0]  # doctest: +SKIP
        >>> page = doc.pages[9]  # doctest: +SKIP
        >>> "[Page 10]" in doc.text[page.start : page.end]  # doctest: +SKIP
        True
    """

    def __init__(self, password: str | None = None, *, tables: bool = False) -> None:
        self.password = password
        self.tables = tables

    def load(self, path: Path) -> list[Document]:
        """Read ``path`` as one document.

        Raises:
            NoTextError: no page has extractable text (a scanned PDF).
            LoaderError: the file is encrypted, corrupt or unreadable.
        """
        source = str(path)
        data = read_bytes(path)
        if self.tables:  # fail before reading when pdfplumber is missing
            require(
                "pdfplumber", extra="tables", purpose="PdfLoader(tables=True)", package="pdfplumber"
            )
        with _quiet("pypdf", source):
            reader = self._open(data, source)
            document = self._read(reader, source)
        if self.tables:
            with _quiet("pdfminer", source):
                tables = read_table_pages(data, self.password, source)
            document = _with_tables(document, tables)
        return [document]

    def _open(self, data: bytes, source: str) -> Any:
        from pypdf import PasswordType, PdfReader
        from pypdf.errors import DependencyError

        try:
            reader = PdfReader(io.BytesIO(data))
        except Exception as exc:  # pypdf raises many exception types on broken files
            raise _corrupt(source, exc) from exc
        if not reader.is_encrypted:
            return reader
        passwords = [self.password, ""] if self.password else [""]
        try:
            opened = any(reader.decrypt(p) != PasswordType.NOT_DECRYPTED for p in passwords)
        except DependencyError as exc:
            raise LoaderError(
                source,
                f"is encrypted with a cipher that needs an extra package ({exc}); "
                "install it with: pip install cryptography",
            ) from exc
        except Exception as exc:
            raise _corrupt(source, exc) from exc
        if opened:
            return reader
        if self.password:
            reason = "is encrypted and the password given to PdfLoader(password=...) is wrong"
        else:
            reason = (
                "is encrypted (password-protected); pass the password with "
                "PdfLoader(password=...), e.g. AutoLoader({'pdf': PdfLoader(password=...)})"
            )
        raise LoaderError(source, reason)

    def _read(self, reader: Any, source: str) -> Document:
        try:
            count = len(reader.pages)
        except Exception as exc:
            raise _corrupt(source, exc) from exc
        if count == 0:
            raise NoTextError(source, "the PDF has no pages")
        labels = _labels(reader, source)
        texts: list[str] = []
        missing: list[int] = []
        errors: list[str] = []
        for number in range(1, count + 1):
            try:
                text = reader.pages[number - 1].extract_text() or ""
            except Exception as exc:  # one bad page must not cost the others
                logger.debug("%s: page %d: text extraction failed", source, number, exc_info=True)
                errors.append(f"page {number}: {type(exc).__name__}: {exc}")
                text = ""
            if not text.strip():
                text = ""
                missing.append(number)
            texts.append(text)
        if len(missing) == count:
            pages = "page" if count == 1 else "pages"
            reason = (
                f"no text layer on any of its {count} {pages} (a scanned PDF?); "
                "run OCR first, e.g. ocrmypdf, then add it again"
            )
            if errors:
                reason += f" (text extraction failed: {'; '.join(errors[:3])})"
            raise NoTextError(source, reason)

        spans: list[PageSpan] = []
        offset = 0
        for number, text in enumerate(texts, start=1):
            if number > 1:
                offset += len(PAGE_SEPARATOR)
            label = labels[number - 1] if labels and len(labels) == count else None
            spans.append(PageSpan(number, offset, offset + len(text), label))
            offset += len(text)

        metadata: dict[str, Any] = {"format": "pdf", "page_count": count}
        title = _title(reader)
        if title:
            metadata["title"] = title
        if missing:
            metadata["pages_without_text"] = missing
        if errors:
            metadata["page_errors"] = errors
        return Document(
            text=PAGE_SEPARATOR.join(texts), source=source, metadata=metadata, pages=tuple(spans)
        )


def _with_tables(document: Document, tables: TablePages) -> Document:
    """``document`` with the pages that hold tables replaced by their table text."""
    texts, counts, errors = tables
    metadata = dict(document.metadata)
    if errors:
        metadata["page_errors"] = [*metadata.get("page_errors", ()), *errors]
    metadata["tables"] = sum(counts.values())
    if counts:
        metadata["table_pages"] = sorted(counts)
    if not texts:
        return replace(document, metadata=metadata)
    parts: list[str] = []
    spans: list[PageSpan] = []
    offset = 0
    for page in document.pages:
        text = texts.get(page.number, document.text[page.start : page.end])
        if parts:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        spans.append(PageSpan(page.number, offset, offset + len(text), page.label))
        parts.append(text)
        offset += len(text)
    missing = [n for n in metadata.pop("pages_without_text", ()) if n not in texts]
    if missing:
        metadata["pages_without_text"] = missing
    return replace(document, text="".join(parts), metadata=metadata, pages=tuple(spans))


def _corrupt(source: str, exc: Exception) -> LoaderError:
    return LoaderError(
        source,
        f"cannot be parsed as a PDF ({type(exc).__name__}: {exc}); the file may be "
        "truncated or corrupt: re-download or re-export it",
    )


def _labels(reader: Any, source: str) -> list[str] | None:
    """Printed page labels, only when the PDF defines them (pypdf invents 1, 2, ...)."""
    try:
        if "/PageLabels" not in reader.root_object:
            return None
        labels = list(reader.page_labels)
    except Exception:  # broken labels are not worth failing the file
        logger.debug("%s: unreadable /PageLabels, ignored", source, exc_info=True)
        return None
    return [str(label) for label in labels]


def _title(reader: Any) -> str:
    """The /Info title, unless it is just the name of the file it was made from."""
    try:
        info = reader.metadata
        title = info.title if info is not None else None
    except Exception:  # a broken /Info dictionary only costs the title
        return ""
    if not isinstance(title, str):
        return ""
    title = " ".join(title.split())
    # Tools often write the source file's name ("rfc2616.txt", "Microsoft Word - a.doc").
    if _FILE_NAME.fullmatch(title.removeprefix("Microsoft Word - ")):
        return ""
    return title
