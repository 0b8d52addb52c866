"""Separator lists for :class:`ragkit.chunking.RecursiveChunker`.

A separator is either a plain string, matched literally, or a compiled regular
expression. The empty string ``""`` means "between any two characters" and ends a list:
it is the last resort for a word longer than a chunk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

__all__ = [
    "DEFAULT_SEPARATORS",
    "MARKDOWN_SEPARATORS",
    "Separator",
    "compile_separators",
    "cut",
]

#: A literal string or a compiled pattern.
Separator = str | re.Pattern[str]

#: Paragraphs, then lines, then words, then characters (LangChain's default list).
DEFAULT_SEPARATORS: tuple[Separator, ...] = ("\n\n", "\n", " ", "")

#: LangChain's ``Language.MARKDOWN`` list: headings, the end of code fences, horizontal
#: rules, then paragraphs, lines, words and characters. A chunk boundary is tried at a
#: heading first, so a section stays in one chunk when it fits.
MARKDOWN_SEPARATORS: tuple[Separator, ...] = (
    re.compile("\n#{1,6} "),
    re.compile("```\n"),
    re.compile("\n\\*\\*\\*+\n"),
    re.compile("\n---+\n"),
    re.compile("\n___+\n"),
    "\n\n",
    "\n",
    " ",
    "",
)


def compile_separators(separators: Sequence[Separator]) -> tuple[re.Pattern[str] | None, ...]:
    """Patterns for ``separators``, with ``None`` standing for "split into characters".

    Like LangChain, nothing after an empty separator is ever tried, so the list is cut
    there.
    """
    compiled: list[re.Pattern[str] | None] = []
    for separator in separators:
        pattern = separator.pattern if isinstance(separator, re.Pattern) else separator
        if not pattern:
            compiled.append(None)
            break
        if isinstance(separator, re.Pattern):
            compiled.append(separator)
        else:
            compiled.append(re.compile(re.escape(separator)))
    return tuple(compiled)


def cut(
    text: str, pattern: re.Pattern[str] | None, keep: Literal["start", "end"] | None
) -> list[tuple[int, int]]:
    """Spans of the non-empty pieces of ``text`` cut at every match of ``pattern``.

    Like LangChain's ``_split_text_with_regex``: the separator starts the piece after it
    (``keep="start"``), ends the piece before it (``"end"``) or is in neither (``None``).
    ``pattern=None`` cuts between every two characters.
    """
    if pattern is None:
        return [(i, i + 1) for i in range(len(text))]
    bounds = [(0, 0)]  # (end of the piece before a match, start of the piece after it)
    for match in pattern.finditer(text):
        if keep == "start":
            bounds.append((match.start(), match.start()))
        elif keep == "end":
            bounds.append((match.end(), match.end()))
        else:
            bounds.append((match.start(), match.end()))
    bounds.append((len(text), len(text)))
    return [(start, end) for (_, start), (end, _) in pairwise(bounds) if end > start]
