"""Choosing a loader by content, and finding the files under a folder."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from ragkit.errors import ConfigurationError, LoaderError
from ragkit.loaders.csv import CsvLoader
from ragkit.loaders.docx import DocxLoader
from ragkit.loaders.html import HtmlLoader
from ragkit.loaders.json import JsonLoader
from ragkit.loaders.markdown import MarkdownLoader
from ragkit.loaders.pdf import PdfLoader
from ragkit.loaders.text import TextLoader, decode_text
from ragkit.protocols import Loader, StreamingLoader
from ragkit.types import Document

__all__ = ["FORMATS", "AutoLoader", "detect_format", "unreadable_reason", "walk"]

logger = logging.getLogger(__name__)

#: The format names :func:`detect_format` returns and :class:`AutoLoader` accepts.
FORMATS = ("csv", "docx", "html", "json", "markdown", "pdf", "text")

_EXTENSIONS = {
    ".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".tsv": "csv",
    ".json": "json", ".jsonl": "json", ".ndjson": "json", ".html": "html", ".htm": "html",
    ".xhtml": "html", ".pdf": "pdf", ".docx": "docx",
}  # fmt: skip
_HEAD = 8192
_MAX_JSON_SNIFF = 64 * 1024 * 1024
_TAG = re.compile(
    r"</?(?:html|head|body|div|p|span|a|br|hr|img|table|tr|td|th|ul|ol|li|dl|dt|dd|h[1-6]"
    r"|title|meta|link|script|style|section|article|nav|main|pre|code|em|strong|b|i)\b[^<>]*>"
)


def detect_format(path: Path) -> str:
    """The format of the file at ``path``, one of :data:`FORMATS`.

    Content first, extension second: ``%PDF-`` is a PDF and a ZIP holding
    ``word/document.xml`` a .docx whatever their names; a leading ``<!doctype html``
    or ``<html`` is HTML. Then ``.md``/``.markdown``, ``.csv``/``.tsv``,
    ``.json``/``.jsonl``/``.ndjson``, ``.html``/``.htm``, ``.pdf`` and ``.docx`` go by
    extension. Anything else that parses as JSON (or JSON Lines) is JSON, anything
    dense with HTML tags is HTML, and the rest is text (whose loader rejects binary).

    Raises:
        LoaderError: the file cannot be read.
    """
    head = _read_head(path)
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04") and _is_docx(path):
        return "docx"
    sample = _head_text(head)
    if sample.startswith(("<!doctype html", "<html")) or (
        sample.startswith("<?xml") and "<html" in sample
    ):
        return "html"
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension is not None:
        return by_extension
    if sample.startswith(("{", "[")) and _parses_as_json(path):
        return "json"
    tags = len(_TAG.findall(sample))
    if (sample.startswith("<") and tags >= 3) or (tags >= 10 and tags * 100 >= len(sample)):
        return "html"
    return "text"


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(_HEAD)
    except IsADirectoryError as exc:
        raise LoaderError(str(path), "is a directory, not a file; use walk() on it") from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LoaderError(str(path), f"cannot read the file: {reason}") from exc


def _head_text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="ignore")
    else:
        text = head.decode("utf-8", errors="ignore")
    return text.lstrip("\ufeff \t\r\n").lower()


def _is_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _parses_as_json(path: Path) -> bool:
    try:
        if path.stat().st_size > _MAX_JSON_SNIFF:
            return False
        text, _ = decode_text(path.read_bytes(), str(path))
    except (OSError, LoaderError):
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            return False
        first_line = text.lstrip().split("\n", 1)[0]
        try:
            json.loads(first_line)  # JSON Lines
        except json.JSONDecodeError:
            return False
    return True


class AutoLoader:
    """Loads any supported file with the loader its content calls for.

    The format comes from :func:`detect_format` (content first, extension second), so a
    PDF named ``.txt`` loads as a PDF, and a binary file named ``.txt`` fails with
    :class:`~ragkit.errors.UnsupportedFormatError`.

    Args:
        loaders: loaders to use instead of the defaults, by format name (see
            :data:`FORMATS`); any object with ``load(path) -> list[Document]`` fits.

    Example:
        >>> loader = AutoLoader({"pdf": PdfLoader(password="s3cret")})
        >>> for path in walk("docs", include=["*.md", "*.pdf"]):  # doctest: +SKIP
        ...     documents = loader.load(path)
    """

    def __init__(self, loaders: Mapping[str, Loader] | None = None) -> None:
        unknown = sorted(set(loaders or {}) - set(FORMATS))
        if unknown:
            raise ConfigurationError(
                f"AutoLoader got loaders for unknown formats {unknown}; "
                f"the formats are {', '.join(FORMATS)}"
            )
        defaults: dict[str, Loader] = {
            "csv": CsvLoader(),
            "docx": DocxLoader(),
            "html": HtmlLoader(),
            "json": JsonLoader(),
            "markdown": MarkdownLoader(),
            "pdf": PdfLoader(),
            "text": TextLoader(),
        }
        self.loaders: dict[str, Loader] = {**defaults, **(loaders or {})}

    def load(self, path: Path) -> list[Document]:
        """Detect the format of ``path`` and load it with that format's loader.

        Raises:
            LoaderError: from the chosen loader; its subclasses say why.
        """
        return self.loaders[detect_format(path)].load(path)

    def windows(self, path: Path) -> Iterator[tuple[int, Document]] | None:
        """The windows of ``path`` from its format's loader, when that loader streams.

        None when the loader has no ``windows`` method (only plain text streams) or the
        file is small enough to ``load`` whole; see
        :class:`~ragkit.protocols.StreamingLoader`.

        Raises:
            LoaderError: from the chosen loader; its subclasses say why.
        """
        loader = self.loaders[detect_format(path)]
        return loader.windows(path) if isinstance(loader, StreamingLoader) else None


def walk(
    root: Path | str,
    include: Sequence[str] = ("**/*",),
    exclude: Sequence[str] = (),
    *,
    hidden: bool = False,
    on_error: Callable[[Path, OSError], None] | None = None,
) -> Iterator[Path]:
    """The files under ``root``, in a stable (sorted) order; ``root`` itself if a file.

    Patterns are glob-style and relative to ``root``, matched with ``/`` separators:
    ``*`` and ``?`` stay within a name, ``**`` spans folders. As in ``.gitignore``, a
    pattern without a ``/`` matches a name at any depth (``"*.md"``), one with a ``/``
    is anchored at ``root`` (``"guides/*.md"``), and one ending in ``/`` means
    everything below that folder. A folder matching an ``exclude`` pattern is not
    entered. Names starting with ``.`` are skipped unless ``hidden=True``. Symbolic
    links to folders are followed, but each real folder is visited once, so link
    loops end. Broken links (dangling, or leading back to themselves) are listed like
    files, so that the caller reports them: opening one raises ``OSError``, which
    :func:`unreadable_reason` puts in words. A folder that cannot be listed is skipped
    and passed to ``on_error`` with the error (logged as a warning without it).

    Raises:
        LoaderError: ``root`` does not exist.

    Example:
        >>> list(walk("docs", include=["*.md"], exclude=["drafts/"]))  # doctest: +SKIP
        [PosixPath('docs/index.md'), PosixPath('docs/guides/setup.md')]
    """
    root = Path(root)
    if root.is_file():
        return iter([root])
    if not root.is_dir():
        raise LoaderError(str(root), "no such file or folder; check the path")
    included = [_pattern(p) for p in include]
    excluded = [_pattern(p) for p in exclude]

    def matches(patterns: list[re.Pattern[str]], rel: str) -> bool:
        return any(p.fullmatch(rel) for p in patterns)

    def visit(folder: Path, prefix: str) -> Iterator[Path]:
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            if on_error is not None:
                on_error(folder, exc)
            else:
                logger.warning("cannot list %s (%s); skipped", folder, exc.strerror)
            return
        for entry in entries:
            if not hidden and entry.name.startswith("."):
                continue
            rel, path = prefix + entry.name, folder / entry.name
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError:  # a link that leads back to itself (ELOOP), for one
                is_dir, is_file = False, False
            if is_dir:
                if matches(excluded, rel) or matches(excluded, rel + "/"):
                    continue
                real = os.path.realpath(path)
                if real in seen:
                    logger.debug("%s leads to %s, visited already; skipped", path, real)
                    continue
                seen.add(real)
                yield from visit(path, rel + "/")
            elif (
                (is_file or _broken_link(entry))
                and matches(included, rel)
                and not matches(excluded, rel)
            ):
                yield path

    seen = {os.path.realpath(root)}
    return visit(root, "")


def _broken_link(entry: os.DirEntry[str]) -> bool:
    """A symbolic link whose target does not exist or that leads back to itself."""
    if not entry.is_symlink():
        return False
    try:
        os.stat(entry.path)
    except OSError:
        return True
    return False


def unreadable_reason(path: Path, exc: OSError) -> str:
    """Why ``path`` could not be opened, said so that the user knows what to do."""
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if exc.errno == errno.ELOOP:
            return (
                f"is a symbolic link loop ({path.name} -> {target} leads back to itself); "
                "remove the link or point it at a file"
            )
        if exc.errno == errno.ENOENT:
            return (
                f"is a dangling symbolic link: its target {target} does not exist; "
                "remove the link or restore the file"
            )
    if exc.errno in (errno.EACCES, errno.EPERM):
        if path.is_dir():
            return (
                "is a folder that cannot be listed: permission denied; its files were "
                "not indexed (and not removed by sync); give the user running ragkit "
                "access to it (chmod a+rx), or exclude it"
            )
        return (
            "cannot be read: permission denied; give the user running ragkit read "
            "access to it (chmod a+r), or exclude it"
        )
    return f"cannot read the file: {exc.strerror or type(exc).__name__}"


def _pattern(pattern: str) -> re.Pattern[str]:
    """Compile a glob pattern (with ``**``) to a regex over ``/``-separated paths."""
    pattern = pattern.replace(os.sep, "/")
    core = pattern.rstrip("/")
    anchored = "/" in core
    if pattern.endswith("/"):
        core += "/**"
    parts = core.lstrip("/").split("/")
    out = [] if anchored else ["(?:.*/)?"]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:.*/)?")
        else:
            out.append(_segment(part) + ("" if last else "/"))
    return re.compile("".join(out))


def _segment(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (close := part.find("]", i + 2)) > i:
            body = part[i + 1 : close]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)
