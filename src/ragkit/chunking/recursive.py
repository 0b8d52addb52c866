"""Recursive splitting on separators, with chunk offsets that are exact by construction."""

from __future__ import annotations

import bisect
import logging
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

from ragkit.chunking.separators import (
    DEFAULT_SEPARATORS,
    MARKDOWN_SEPARATORS,
    Separator,
    compile_separators,
)
from ragkit.errors import ConfigurationError
from ragkit.tokens import get_encoding
from ragkit.types import Chunk, Document, PageSpan, chunk_id

__all__ = ["RecursiveChunker"]

logger = logging.getLogger(__name__)

Span = tuple[int, int]
# (start, end, length, length of the text between this piece and the one before it)
_Piece = tuple[int, int, int, int]
#: Lengths of pieces up to this many characters (words, lines) are memoised, in caches
#: kept by the chunker across documents (common words are measured once per process, not
#: once per document), each emptied when its keys pass _CACHE_CHARS characters: memory
#: stays flat on big texts. Pieces up to _WORD_LENGTH characters (words, the spaces
#: between them) have a cache of their own, so that long pieces, which rarely repeat,
#: do not flush the words: on SciFact one shared cache was emptied every few hundred
#: abstracts and missed 23 % of word lookups.
_CACHED_LENGTH = 4096
_WORD_LENGTH = 32
_CACHE_CHARS = 2**20


class RecursiveChunker:
    """Splits text at paragraphs, then lines, then words, like LangChain's recursive splitter.

    The text is cut at the first separator of the list that occurs in it; pieces still
    too long are cut again with the next separators, and neighbouring pieces are merged
    back into chunks of up to ``chunk_size``, each chunk starting with up to
    ``chunk_overlap`` of the end of the one before. All of it works on spans of the
    document, so every chunk is ``document.text[chunk.start:chunk.end]``, however often
    its text repeats. As in LangChain, the length of a chunk is the sum of the lengths
    of its pieces (in tokens, a little more than the tokens of the chunk as a whole).

    Chunk texts equal those of LangChain's ``RecursiveCharacterTextSplitter`` with the
    same settings and ``strip_whitespace=True``, except in three rare cases:

    * LangChain emits a chunk, then one starting at the same character (its overlap
      dropped only whitespace): ragkit keeps only the second, which contains the first,
      so that starts strictly increase;
    * a piece too long for a chunk that no separator can cut (a character when
      ``chunk_size=1``, a word when the separators lack ``""``) is stripped of
      whitespace, and dropped when it is only whitespace; LangChain keeps it as it is;
    * with ``keep_separator=False``, a chunk is the text from its first piece to its
      last, so several separators in a row stay as they are; LangChain joins the pieces
      with one separator, which is not a substring of the document.

    Example:
        >>> from ragkit.types import Document
        >>> chunker = RecursiveChunker(chunk_size=8, chunk_overlap=0, length="characters")
        >>> doc = Document(text="one two\\n\\none two", source="a.txt")
        >>> [(c.text, c.start, c.end) for c in chunker.split(doc)]
        [('one two', 0, 7), ('one two', 9, 16)]

    Args:
        chunk_size: largest chunk (see ``length``); longer only for a piece that cannot
            be cut (see above). The default, 160 cl100k tokens, keeps prose and Markdown
            with code under the 256 word pieces at which the default embedder,
            all-MiniLM-L6-v2, truncates its input.
        chunk_overlap: at most how much of the end of a chunk the next one repeats.
        separators: literal strings or compiled patterns, tried in order; by default
            :data:`DEFAULT_SEPARATORS`, or :data:`MARKDOWN_SEPARATORS` for Markdown.
        length: ``"tokens"`` of ``encoding`` (tiktoken), ``"characters"``, or a
            function ``str -> int``, for example your embedder's tokenizer.
        encoding: the tiktoken encoding for ``length="tokens"``.
        markdown: whether to use :data:`MARKDOWN_SEPARATORS`; ``"auto"`` does for
            documents whose ``metadata["format"]`` is ``"markdown"``. Ignored when
            ``separators`` is given.
        keep_separator: a separator begins the piece after it (``"start"`` or ``True``),
            ends the piece before it (``"end"``), or belongs to neither (``False``) and
            is left out where it falls between two chunks.

    Raises:
        ConfigurationError: a size is not positive, ``chunk_overlap >= chunk_size``, or
            another argument has an unknown value.
    """

    def __init__(
        self,
        chunk_size: int = 160,
        chunk_overlap: int = 24,
        separators: Sequence[Separator] | None = None,
        *,
        length: Literal["tokens", "characters"] | Callable[[str], int] = "tokens",
        encoding: str = "cl100k_base",
        markdown: Literal["auto"] | bool = "auto",
        keep_separator: bool | Literal["start", "end"] = True,
    ) -> None:
        if chunk_size <= 0:
            raise ConfigurationError(f"chunk_size must be positive, got {chunk_size}")
        if chunk_overlap < 0:
            raise ConfigurationError(f"chunk_overlap must be 0 or more, got {chunk_overlap}")
        if chunk_overlap >= chunk_size:
            raise ConfigurationError(
                f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size "
                f"({chunk_size}); a tenth to a fifth of chunk_size is usual"
            )
        if not callable(length) and length not in ("tokens", "characters"):
            raise ConfigurationError(
                f"length must be 'tokens', 'characters' or a function, got {length!r}"
            )
        if markdown not in ("auto", True, False):
            raise ConfigurationError(f"markdown must be 'auto', True or False, got {markdown!r}")
        if keep_separator not in (True, False, "start", "end"):
            raise ConfigurationError(
                f"keep_separator must be 'start', 'end', True or False, got {keep_separator!r}"
            )
        if isinstance(separators, str) or (separators is not None and not separators):
            raise ConfigurationError(
                f"separators must be a non-empty list of strings or patterns, got {separators!r}"
            )
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.separators = tuple(separators) if separators is not None else None
        self.length = length
        self.encoding = encoding
        self.markdown = markdown
        self.keep_separator = keep_separator
        self._keep: Literal["start", "end"] | None = (
            "end" if keep_separator == "end" else "start" if keep_separator else None
        )
        self._patterns = {
            False: compile_separators(self.separators or DEFAULT_SEPARATORS),
            True: compile_separators(self.separators or MARKDOWN_SEPARATORS),
        }
        # (length settings, [word cache, line cache], characters held as keys by each)
        self._lengths: tuple[object, list[dict[str, int]], list[int]] = ((), [{}, {}], [0, 0])

    def __repr__(self) -> str:
        return (
            f"RecursiveChunker(chunk_size={self.chunk_size}, chunk_overlap={self.chunk_overlap}, "
            f"length={self.length!r}, markdown={self.markdown!r})"
        )

    def split(self, document: Document) -> list[Chunk]:
        """Chunks of ``document`` in order, with exact offsets, pages and heading path."""
        text = document.text
        markdown = self.markdown is True or (
            self.markdown == "auto" and document.metadata.get("format") == "markdown"
        )
        page_at = _page_finder(document)
        chunks: list[Chunk] = []
        for index, (start, end) in enumerate(self.split_spans(text, markdown=markdown)):
            first, last = page_at(start), page_at(end - 1)
            metadata = dict(document.metadata)
            if document.headings:
                metadata["heading_path"] = " > ".join(document.heading_path_at(start))
            metadata["chunk_index"] = index
            chunks.append(
                Chunk(
                    id=chunk_id(document.source, start, text[start:end]),
                    text=text[start:end],
                    document_id=document.id,
                    source=document.source,
                    start=start,
                    end=end,
                    page=first.number if first is not None else None,
                    page_end=last.number if last is not None else None,
                    page_label=first.label if first is not None else None,
                    page_label_end=last.label if last is not None else None,
                    metadata=metadata,
                )
            )
        logger.debug("split %s into %d chunks", document.source, len(chunks))
        return chunks

    def split_spans(self, text: str, *, markdown: bool = False) -> list[Span]:
        """``(start, end)`` of each chunk of ``text``: in order, starts strictly increasing.

        No span is empty or only whitespace, and every character that is not whitespace
        lies in one span at least (with ``keep_separator=False``: except separators).
        """
        measure = self._measurer()
        spans: list[Span] = []
        for raw_start, raw_end in self._split(text, (0, len(text)), markdown, 0, measure):
            start, end = raw_start, raw_end
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if start == end:
                continue
            if spans and start <= spans[-1][0]:  # extends the chunk before (see class doc)
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
        return spans

    def _measurer(self) -> Callable[[str], int]:
        """The length function, memoised (words and short lines repeat a lot).

        The memo lives as long as the chunker and its length settings: a thread-safe
        dict (each get and set is atomic; a lost update only costs a recount).
        """
        if self.length == "characters":
            return len
        if callable(self.length):
            count = self.length
        else:
            try:
                encode = get_encoding(self.encoding).encode
            except ValueError as exc:
                raise ConfigurationError(
                    f"unknown tiktoken encoding {self.encoding!r}; try 'cl100k_base'"
                ) from exc

            def count(piece: str) -> int:
                return len(encode(piece, disallowed_special=()))

        key = (self.length, self.encoding)
        if self._lengths[0] != key:
            self._lengths = (key, [{}, {}], [0, 0])
        _, caches, held = self._lengths

        def measure(piece: str) -> int:
            size = len(piece)
            if size > _CACHED_LENGTH:  # a big piece is measured once anyway
                return count(piece)
            which = 0 if size <= _WORD_LENGTH else 1
            cache = caches[which]
            n = cache.get(piece)
            if n is None:
                n = count(piece)
                if held[which] > _CACHE_CHARS:  # bounded: a cache never holds the text
                    cache.clear()
                    held[which] = 0
                cache[piece] = n
                held[which] += size
            return n

        return measure

    def _split(
        self, text: str, span: Span, markdown: bool, level: int, measure: Callable[[str], int]
    ) -> Iterator[Span]:
        """LangChain's ``_split_text`` on ``text[start:end]``; spans not yet stripped.

        Pieces are cut, measured and merged one at a time, so memory holds the chunks
        being formed, not every piece: a 10 MB line has a million words.
        """
        start, end = span
        sub = text[start:end]
        patterns = self._patterns[markdown]
        # The first separator from ``level`` on that occurs; "" (None) always does and
        # ends the list. When none occurs the text stays whole.
        pattern: re.Pattern[str] | None = patterns[-1]
        deeper = len(patterns)
        for i in range(level, len(patterns)):
            candidate = patterns[i]
            if candidate is None or candidate.search(sub):
                pattern, deeper = candidate, (i + 1 if candidate is not None else deeper)
                break
        merger = _Merger(self.chunk_size, self.chunk_overlap)
        previous_end = start
        for cut_start, cut_end in _cuts(sub, pattern, self._keep):
            piece_start, piece_end = start + cut_start, start + cut_end
            gap = measure(text[previous_end:piece_start]) if previous_end < piece_start else 0
            previous_end = piece_end
            size = measure(text[piece_start:piece_end])
            if size < self.chunk_size:
                yield from merger.add((piece_start, piece_end, size, gap))
                continue
            yield from merger.flush()
            if deeper < len(patterns):
                yield from self._split(text, (piece_start, piece_end), markdown, deeper, measure)
            else:
                yield piece_start, piece_end
        yield from merger.flush()


class _Merger:
    """LangChain's ``_merge_splits``, fed one piece at a time (pieces of one level)."""

    def __init__(self, chunk_size: int, chunk_overlap: int) -> None:
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.window: deque[_Piece] = deque()
        self.total = 0  # length of the window: its pieces and the gaps between them

    def add(self, piece: _Piece) -> Iterator[Span]:
        window, size, gap = self.window, piece[2], piece[3]
        if window and self.total + size + gap > self.chunk_size:
            yield window[0][0], window[-1][1]
            while self.total > self.chunk_overlap or (
                self.total > 0 and self.total + size + (gap if window else 0) > self.chunk_size
            ):
                self.total -= window.popleft()[2] + (window[0][3] if window else 0)
        self.total += size + (gap if window else 0)
        window.append(piece)

    def flush(self) -> Iterator[Span]:
        """The last chunk of a run of pieces; the next piece starts a new run."""
        if self.window:
            yield self.window[0][0], self.window[-1][1]
            self.window.clear()
            self.total = 0


def _cuts(
    text: str, pattern: re.Pattern[str] | None, keep: Literal["start", "end"] | None
) -> Iterator[Span]:
    """:func:`~ragkit.chunking.separators.cut`, lazily: one span at a time."""
    if pattern is None:
        yield from ((i, i + 1) for i in range(len(text)))
        return
    piece_start = 0
    for match in pattern.finditer(text):
        if keep == "start":
            piece_end, next_start = match.start(), match.start()
        elif keep == "end":
            piece_end, next_start = match.end(), match.end()
        else:
            piece_end, next_start = match.start(), match.end()
        if piece_end > piece_start:
            yield piece_start, piece_end
        piece_start = next_start
    if len(text) > piece_start:
        yield piece_start, len(text)


def _page_finder(document: Document) -> Callable[[int], PageSpan | None]:
    """``document.page_at``, by bisection when the pages are sorted (the usual case)."""
    pages = document.pages
    starts = [page.start for page in pages]
    if not pages or starts != sorted(starts):
        return document.page_at

    def page_at(offset: int) -> PageSpan:
        return pages[max(bisect.bisect_right(starts, offset) - 1, 0)]

    return page_at
