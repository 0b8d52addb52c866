"""Markdown files: the raw text, with ATX and setext headings located in it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ragkit.errors import NoTextError
from ragkit.loaders.text import decode_text, read_bytes
from ragkit.types import Document, Heading

__all__ = ["MarkdownLoader", "parse_markdown"]

_ATX = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)(.*)")
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
# Lines that start some other block, so they can't be (the start of) a setext title.
_OTHER_BLOCK = re.compile(r" {0,3}(?:[>|<]|[-*+][ \t]|\d{1,9}[.)][ \t]|(?:[-*_][ \t]*){3,}$)")
_INDENTED_CODE = re.compile(r"(?: {4}|\t)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_STRONG = re.compile(r"(\*\*|__)(.+?)\1")
_EMPHASIS = re.compile(r"\*(\S(?:.*?\S)?)\*")
_FRONT_MATTER_ITEM = re.compile(r"([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*)")


def _lines(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """``(offset, line)`` pairs, the line without its ``\\n`` / ``\\r\\n``.

    Only ``\\n`` ends a line: ``str.splitlines`` would also split on form feeds and
    Unicode separators, which Markdown treats as ordinary characters.
    """
    pos = start
    while pos < len(text):
        end = text.find("\n", pos)
        if end < 0:
            end = len(text)
        yield pos, text[pos:end].removesuffix("\r")
        pos = end + 1


def _front_matter(text: str) -> tuple[int, dict[str, str]]:
    """End offset of a leading ``---`` block and its simple ``key: value`` items."""
    lines = _lines(text)
    first = next(lines, None)
    if first is None or first[1].rstrip() != "---":
        return 0, {}
    items: dict[str, str] = {}
    for offset, line in lines:
        if line.rstrip() in ("---", "..."):
            return offset + len(line) + 1, items
        match = _FRONT_MATTER_ITEM.fullmatch(line.rstrip())
        if match:
            items[match.group(1).lower()] = match.group(2).strip().strip("\"'").strip()
    return 0, {}  # never closed: not front matter


def _plain(title: str) -> str:
    """A heading's text without the commonest inline markup."""
    title = _LINK.sub(r"\1", title)
    title = _STRONG.sub(r"\2", title)
    title = _EMPHASIS.sub(r"\1", title)
    return " ".join(title.replace("`", "").split())


def parse_markdown(text: str) -> tuple[tuple[Heading, ...], dict[str, str]]:
    """The headings of ``text`` and the simple items of its front matter.

    A heading's ``start`` is the offset of its first line in ``text``. Lines inside
    fenced code blocks and the front matter are never headings.
    """
    body_start, front = _front_matter(text)
    headings: list[Heading] = []
    paragraph: list[tuple[int, str]] = []
    fence: str | None = None
    for offset, line in _lines(text, body_start):
        if fence is not None:
            stripped = line.strip()
            if (
                stripped.startswith(fence)
                and not stripped.strip(fence[0])
                and len(line) - len(line.lstrip(" ")) <= 3
            ):
                fence = None
            continue
        opened = _FENCE_OPEN.fullmatch(line)
        if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            fence = opened.group(1)
            paragraph = []
            continue
        if not line.strip():
            paragraph = []
            continue
        if paragraph and _SETEXT.fullmatch(line):
            title = _plain(" ".join(part.strip() for _, part in paragraph))
            if title:
                level = 1 if line.strip()[0] == "=" else 2
                headings.append(Heading(paragraph[0][0], level, title))
            paragraph = []
            continue
        atx = _ATX.fullmatch(line)
        if atx:
            title = _plain(_ATX_CLOSING.sub("", atx.group(2)))
            if title:
                headings.append(Heading(offset, len(atx.group(1)), title))
            paragraph = []
            continue
        if paragraph:
            paragraph.append((offset, line))  # a continuation line
        elif not _OTHER_BLOCK.match(line) and not _INDENTED_CODE.match(line):
            paragraph = [(offset, line)]
    return tuple(headings), front


class MarkdownLoader:
    """Loads a Markdown file as one document, its text verbatim.

    Offsets (of headings, and of chunks later) point into the raw Markdown, so a quote
    can be found in the file as it is. ``headings`` holds ATX (``#`` .. ``######``) and
    setext (underlined) headings, not ``#`` lines inside fenced code. The title is the
    ``title:`` of a YAML front matter block, else the first level-1 heading.

    Example:
        >>> doc = MarkdownLoader().load(Path("docs/quickstart.md"))[0]  # doctest: +SKIP
        >>> doc.headings[0].title  # doctest: +SKIP
        'QuickStart'
    """

    def load(self, path: Path) -> list[Document]:
        """Read ``path`` as one document.

        Raises:
            UnsupportedFormatError: the file holds binary data.
            NoTextError: the file is empty or only whitespace.
            LoaderError: the file cannot be read.
        """
        source = str(path)
        text, encoding = decode_text(read_bytes(path), source)
        if not text.strip():
            raise NoTextError(source, "the file is empty or holds only whitespace")
        headings, front = parse_markdown(text)
        metadata: dict[str, str] = {"format": "markdown", "encoding": encoding}
        title = front.get("title") or next((h.title for h in headings if h.level == 1), "")
        if title:
            metadata["title"] = title
        return [Document(text=text, source=source, metadata=metadata, headings=headings)]
