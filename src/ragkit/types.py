"""The data that flows through a ragkit pipeline.

Every type here is a frozen, slotted dataclass. Text positions are character offsets
into :attr:`Document.text` (Python ``str`` indices), so for every chunk::

    document.text[chunk.start:chunk.end] == chunk.text
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "CitationEvent",
    "DeltaEvent",
    "Document",
    "DoneEvent",
    "FileIssue",
    "Generation",
    "Heading",
    "Hits",
    "IndexReport",
    "PageSpan",
    "ScoredChunk",
    "SourcesEvent",
    "StreamEvent",
    "Usage",
    "chunk_id",
    "document_id",
    "text_then_answer",
]

#: Metadata values that every store can filter on.
Scalar = str | int | float | bool


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def document_id(source: str, part: str = "") -> str:
    """Stable id of the document at ``source`` (``part`` tells apart several per file)."""
    return _digest("doc", source, part)


def chunk_id(source: str, start: int, text: str) -> str:
    """Stable id of a chunk: a hash of its source, its offset and its content.

    The offset keeps two identical passages of one document apart.
    """
    return _digest("chunk", source, str(start), text)


# Metadata keys loaders use for one record of a multi-record file, and how to say it.
_RECORD_KEYS = (("row", "row"), ("line", "line"), ("index", "record"))


def _location(item: Chunk | Citation) -> str:
    """``file.pdf, p. 12``, ``file.pdf, pp. 12-13``, ``t.csv, row 4`` or just the source."""
    if item.page is None:
        for key, word in _RECORD_KEYS:
            if isinstance(item.metadata.get(key), int):
                return f"{item.source}, {word} {item.metadata[key]}"
        return item.source
    first = item.page_label or str(item.page)
    if item.page_end is None or item.page_end == item.page:
        return f"{item.source}, p. {first}"
    last = item.page_label_end or str(item.page_end)
    return f"{item.source}, pp. {first}-{last}"


@dataclass(frozen=True, slots=True)
class PageSpan:
    """Where one page of a paginated document lies in :attr:`Document.text`.

    Attributes:
        number: 1-based physical page number.
        start: offset of the page's first character in the document text.
        end: offset just past the page's last character.
        label: the printed page label, when the file defines one (PDF ``/PageLabels``).
    """

    number: int
    start: int
    end: int
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading of a structured document (Markdown ``#``, HTML ``<h1>``..``<h6>``).

    Attributes:
        start: offset of the heading line in the document text.
        level: 1 for a top-level heading, 2 below it, and so on.
        title: the heading's text without markup.
    """

    start: int
    level: int
    title: str


@dataclass(frozen=True, slots=True)
class Document:
    """A unit of text to index, with where it came from.

    Example:
        >>> doc = Document(text="Timeouts default to 5 seconds.", source="notes.txt")
        >>> doc.id == document_id("notes.txt")
        True

    Attributes:
        text: the full text.
        source: path or URI the text came from.
        id: stable id; derived from ``source`` when not given.
        metadata: free metadata (title, heading path, row number, ...).
        pages: page layout for paginated formats, in order; empty otherwise.
        headings: headings in order of ``start``; empty for unstructured text.
    """

    text: str
    source: str
    id: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    pages: tuple[PageSpan, ...] = ()
    headings: tuple[Heading, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", document_id(self.source))

    def page_at(self, offset: int) -> PageSpan | None:
        """The page holding the character at ``offset``, or None when unpaginated."""
        if not self.pages:
            return None
        found = self.pages[0]
        for page in self.pages:
            if page.start <= offset:
                found = page
            else:
                break
        return found

    def heading_path_at(self, offset: int) -> tuple[str, ...]:
        """Titles of the headings that enclose ``offset``, outermost first."""
        path: list[tuple[int, str]] = []
        for heading in self.headings:
            if heading.start > offset:
                break
            while path and path[-1][0] >= heading.level:
                path.pop()
            path.append((heading.level, heading.title))
        return tuple(title for _, title in path)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document, the unit that is embedded, stored and retrieved.

    Attributes:
        id: stable id (see :func:`chunk_id`).
        text: exactly ``document.text[start:end]``.
        document_id: id of the document it came from.
        source: path or URI of that document.
        start: offset of the first character in the document text.
        end: offset just past the last character.
        page: 1-based page of the first character (paginated formats only).
        page_end: page of the last character; differs from ``page`` when the chunk
            crosses a page break.
        page_label: printed label of ``page``, when the document has labels.
        page_label_end: printed label of ``page_end``.
        metadata: the document's metadata plus chunk-level keys (heading path, ...).
    """

    id: str
    text: str
    document_id: str
    source: str
    start: int
    end: int
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    page_label_end: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """Human-readable place: ``file.pdf, p. 12``, ``t.csv, row 4``, or the source."""
        return _location(self)


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A retrieved chunk and its score (higher is more relevant)."""

    chunk: Chunk
    score: float


class Hits(list[ScoredChunk]):
    """Retrieved chunks, best first: a plain ``list[ScoredChunk]`` that Jupyter shows as
    a table (rank, score, source and pages, text)."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        from ragkit.display import hits_html

        return hits_html(self)


@dataclass(frozen=True, slots=True)
class Citation:
    """What one ``[n]`` marker in an answer points at.

    Attributes:
        marker: the number ``n`` as it appears in the answer text.
        chunk_id: id of the cited chunk.
        source: file or URI of the cited text.
        start: offset of the quoted text in the source document.
        end: offset just past the quoted text.
        quote: the cited text, ``document.text[start:end]``: the sentences of the chunk
            that the answer's claim was taken from, or the whole chunk when no sentence
            matches the claim closely.
        page: first page of the cited chunk (paginated formats).
        page_end: last page of the cited chunk.
        page_label: printed label of ``page`` where the document has labels.
        page_label_end: printed label of ``page_end``.
        metadata: the cited chunk's metadata (title, heading path, CSV row, ...).
    """

    marker: int
    chunk_id: str
    source: str
    start: int
    end: int
    quote: str
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    page_label_end: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """Human-readable place: ``file.pdf, p. 12``, ``t.csv, row 4``."""
        return _location(self)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a language model read and wrote for one answer, as its tokenizer counts.

    Attributes:
        prompt_tokens: tokens of the prompt (instructions, passages, question).
        completion_tokens: tokens the model generated, including any it wrote past a
            stop that ragkit cut off.
    """

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_wire(cls, data: object) -> Usage | None:
        """The ``usage`` object of an OpenAI-style response; None when absent or malformed."""
        if not isinstance(data, Mapping):
            return None
        prompt, completion = data.get("prompt_tokens"), data.get("completion_tokens")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                   for n in (prompt, completion)):  # fmt: skip
            return None
        return cls(prompt, completion)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Generation:
    """What a generator returns: text with ``[n]`` markers into ``contexts``.

    Attributes:
        text: the answer; ``[n]`` refers to ``contexts[n - 1]``.
        contexts: the chunks given to the model, numbered from 1, in that order.
        dropped: chunks left out because they did not fit the token budget.
        model: name of the model (or method) that wrote the text.
        extractive: True when the text was quoted from the contexts, not generated.
        refused: True when the generator found no answer in the contexts.
        usage: the model's token counts; None when no model wrote the text or the
            generator cannot tell.
    """

    text: str
    contexts: tuple[ScoredChunk, ...]
    dropped: tuple[ScoredChunk, ...] = ()
    model: str = ""
    extractive: bool = False
    refused: bool = False
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to a question, with the sources behind each claim.

    Example:
        >>> answer = rag.ask("How do I set a timeout?")  # doctest: +SKIP
        >>> print(answer)  # the text, then the numbered sources  # doctest: +SKIP

    Attributes:
        question: what was asked.
        text: the answer, with ``[n]`` markers that each match a citation.
        citations: one per distinct marker in ``text``, in order of ``marker``.
        contexts: every chunk the generator saw, in the order it saw them.
        dropped: retrieved chunks left out to fit the token budget.
        invalid_markers: markers the generator wrote that pointed at no chunk; they
            were removed from ``text``.
        model: what wrote the text.
        extractive: True when the text is quoted, not generated.
        refused: True when the answer is "I don't have enough information".
        unsupported: sentences of the answer that no retrieved passage supports (set
            when citations are verified; see :class:`ragkit.verification.CitationVerifier`).
        related: with a refusal, the closest passages found, for the user to look at.
        usage: the language model's token counts for this answer (None for extractive
            answers, refusals made before any model ran, and generators that cannot
            tell).
    """

    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    contexts: tuple[ScoredChunk, ...] = ()
    dropped: tuple[ScoredChunk, ...] = ()
    invalid_markers: tuple[int, ...] = ()
    model: str = ""
    extractive: bool = False
    refused: bool = False
    unsupported: tuple[str, ...] = ()
    related: tuple[ScoredChunk, ...] = ()
    usage: Usage | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: text, citations, contexts with their chunks and scores."""
        return asdict(self)

    def _repr_html_(self) -> str:
        """Jupyter: the text with clickable numbered sources, quotes highlighted."""
        from ragkit.display import answer_html

        return answer_html(self)

    def __str__(self) -> str:
        lines = []
        if self.extractive and not self.refused:
            lines.append("(extractive answer: sentences quoted from your documents)")
        lines.append(self.text)
        notes = self.format_sources()
        return "\n".join(lines) + ("\n" + notes if notes else "")

    def format_sources(self) -> str:
        """The numbered sources, unsupported claims and related passages, as text."""
        lines: list[str] = []
        if self.citations:
            lines.append("")
            lines.append("Sources:")
            for c in self.citations:
                lines.append(f"[{c.marker}] {c.location} (chars {c.start}-{c.end})")
        if self.unsupported:
            lines.append("")
            lines.append(f"Not supported by the sources ({len(self.unsupported)}):")
            lines += [f"  - {claim}" for claim in self.unsupported]
        if self.refused and self.related:
            lines.append("")
            lines.append("Related sources:")
            lines += [
                f"  - {h.chunk.location} (chars {h.chunk.start}-{h.chunk.end})"
                for h in self.related
            ]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class SourcesEvent:
    """First event of a streamed answer: the passages retrieved for it, best first."""

    hits: tuple[ScoredChunk, ...]


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    """More of the answer's text, already verified: the deltas of a stream, joined, are
    the final :attr:`Answer.text`; nothing sent is withdrawn later."""

    text: str


@dataclass(frozen=True, slots=True)
class CitationEvent:
    """A marker ``[n]`` that the text sent so far uses for the first time, and its source.
    The final answer's citation of that marker may quote more of the passage."""

    citation: Citation


@dataclass(frozen=True, slots=True)
class DoneEvent:
    """Last event: the complete :class:`Answer`."""

    answer: Answer


#: What ``RAG.events`` yields: sources once, deltas and citations, then done.
StreamEvent = SourcesEvent | DeltaEvent | CitationEvent | DoneEvent


def text_then_answer(events: Iterable[StreamEvent]) -> Iterator[str | Answer]:
    """The text deltas of ``events``, then the final :class:`Answer`: what ``stream``
    yields (``RAG``, ``RetrievalQA`` and the client), built on their ``events``."""
    for event in events:
        if isinstance(event, DeltaEvent):
            yield event.text
        elif isinstance(event, DoneEvent):
            yield event.answer


@dataclass(frozen=True, slots=True)
class FileIssue:
    """A file, or part of one, that was not (fully) indexed, and why."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What one call to ``add`` (or ``sync``) did.

    Attributes:
        added: sources indexed for the first time.
        updated: sources whose content changed and were re-indexed.
        unchanged: sources skipped because their content is already indexed.
        deleted: sources removed from the index.
        failed: files that could not be indexed, each with the reason.
        warnings: indexed files with a problem worth knowing (e.g. pages without text).
        chunks_added: chunks written to the store.
        chunks_deleted: chunks removed from the store.
        seconds: wall time of the call.
    """

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    failed: tuple[FileIssue, ...] = ()
    warnings: tuple[FileIssue, ...] = ()
    chunks_added: int = 0
    chunks_deleted: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

    def _repr_html_(self) -> str:
        """Jupyter: the counts, failed files and warnings as HTML."""
        from ragkit.display import report_html

        return report_html(self)

    def __str__(self) -> str:
        lines = [
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, deleted {len(self.deleted)}, "
            f"failed {len(self.failed)} sources; "
            f"{self.chunks_added} chunks written, {self.chunks_deleted} removed "
            f"in {self.seconds:.1f}s"
        ]
        lines += [f"  failed: {f.source}: {f.reason}" for f in self.failed]
        lines += [f"  warning: {w.source}: {w.reason}" for w in self.warnings]
        return "\n".join(lines)
