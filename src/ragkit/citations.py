"""Turn the ``[n]`` markers of a generated text into citations."""

from __future__ import annotations

import re

from ragkit.analysis import content_terms, split_sentences
from ragkit.types import Answer, Chunk, Citation, Generation, ScoredChunk

__all__ = [
    "answer_from_generation",
    "citation_for",
    "cite",
    "claims_by_marker",
    "is_refusal",
]

# [1], [1, 2], [1,2,3]: what models write.
_MARKERS = re.compile(r"\s?\[(\d+(?:\s*,\s*\d+)*)\]")
# A run of normalized markers, as left by :func:`cite`.
_MARKER_RUN = re.compile(r"(?:\[\d+\])+")
_ONE_MARKER = re.compile(r"\[(\d+)\]")
#: Share of a claim's content words a source sentence must hold to be its quote.
QUOTE_OVERLAP = 0.6


def cite(text: str, contexts: tuple[ScoredChunk, ...]) -> tuple[str, list[int], list[int]]:
    """Normalize markers to ``[n]`` and drop those that point at no context.

    Returns:
        the cleaned text, the valid markers in order of first use, and the invalid ones.
    """
    valid: list[int] = []
    invalid: list[int] = []

    def replace(match: re.Match[str]) -> str:
        keep = []
        for part in match.group(1).split(","):
            n = int(part)
            if 1 <= n <= len(contexts):
                keep.append(n)
                if n not in valid:
                    valid.append(n)
            elif n not in invalid:
                invalid.append(n)
        lead = match.group(0)[: len(match.group(0)) - len(match.group(0).lstrip())]
        return lead + "".join(f"[{n}]" for n in keep) if keep else ""

    cleaned = _MARKERS.sub(replace, text)
    return cleaned.strip(), valid, invalid


def claims_by_marker(text: str) -> dict[int, list[str]]:
    """The text each marker stands behind: what precedes it, back to the previous marker."""
    claims: dict[int, list[str]] = {}
    previous = 0
    for run in _MARKER_RUN.finditer(text):
        claim = text[previous : run.start()].strip(" \t\n.,;:")
        for n in _ONE_MARKER.findall(run.group(0)):
            claims.setdefault(int(n), []).append(claim)
        previous = run.end()
    return claims


def _quoted_span(chunk_text: str, claims: list[str]) -> tuple[int, int] | None:
    """The span of ``chunk_text`` holding the sentences the claims were taken from."""
    sentences = [
        (s, e, set(content_terms(chunk_text[s:e]))) for s, e in split_sentences(chunk_text)
    ]
    found: list[tuple[int, int]] = []
    for claim in claims:
        terms = set(content_terms(claim))
        if not terms:
            continue
        best = max(sentences, key=lambda x: len(terms & x[2]), default=None)
        if best is not None and len(terms & best[2]) >= QUOTE_OVERLAP * len(terms):
            found.append((best[0], best[1]))
    if not found:
        return None
    return min(s for s, _ in found), max(e for _, e in found)


def citation_for(marker: int, chunk: Chunk, start: int, end: int) -> Citation:
    """A citation quoting ``chunk.text[start:end]``, placed in the source document.

    ``start`` and ``end`` are offsets into the chunk; the chunk's own offsets turn them
    into offsets into the document text.
    """
    return Citation(
        marker=marker,
        chunk_id=chunk.id,
        source=chunk.source,
        start=chunk.start + start,
        end=chunk.start + end,
        quote=chunk.text[start:end],
        page=chunk.page,
        page_end=chunk.page_end,
        page_label=chunk.page_label,
        page_label_end=chunk.page_label_end,
        metadata=chunk.metadata,
    )


def _citation(marker: int, hit: ScoredChunk, claims: list[str]) -> Citation:
    span = _quoted_span(hit.chunk.text, claims)
    start, end = span if span is not None else (0, len(hit.chunk.text))
    return citation_for(marker, hit.chunk, start, end)


_REFUSAL_PHRASE = re.compile(
    r"\b(?:do not|don't|dont|doesn't|does not) (?:have|contain) enough information\b", re.I
)


def is_refusal(text: str) -> bool:
    """True when ``text`` is (or opens with) the "not enough information" refusal."""
    return bool(_REFUSAL_PHRASE.search(text[:200]))


def answer_from_generation(question: str, generation: Generation) -> Answer:
    """Build the :class:`Answer`: resolve markers, report the ones that point nowhere.

    A generation whose text is the refusal (a model saying it does not have enough
    information) becomes a refused answer without citations; the passages it saw are
    listed as ``related``.
    """
    if generation.refused or is_refusal(generation.text):
        return Answer(
            question=question,
            text=generation.text.strip(),
            contexts=generation.contexts,
            dropped=generation.dropped,
            model=generation.model,
            extractive=generation.extractive,
            refused=True,
            related=generation.contexts[:3],
            usage=generation.usage,
        )
    text, valid, invalid = cite(generation.text, generation.contexts)
    claims = claims_by_marker(text)
    citations = tuple(
        _citation(n, generation.contexts[n - 1], claims.get(n, [])) for n in sorted(valid)
    )
    return Answer(
        question=question,
        text=text,
        citations=citations,
        contexts=generation.contexts,
        dropped=generation.dropped,
        invalid_markers=tuple(invalid),
        model=generation.model,
        extractive=generation.extractive,
        refused=generation.refused,
        usage=generation.usage,
    )
