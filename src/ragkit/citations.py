"""Turn the ``[n]`` markers of a generated text into citations."""

from __future__ import annotations

import re

from ragkit.types import Answer, Citation, Generation, ScoredChunk

__all__ = ["answer_from_generation", "cite"]

# [1], [1, 2], [1,2,3]: what models write.
_MARKERS = re.compile(r"\s?\[(\d+(?:\s*,\s*\d+)*)\]")


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


def _citation(marker: int, hit: ScoredChunk) -> Citation:
    chunk = hit.chunk
    return Citation(
        marker=marker,
        chunk_id=chunk.id,
        source=chunk.source,
        start=chunk.start,
        end=chunk.end,
        quote=chunk.text,
        page=chunk.page,
        page_end=chunk.page_end,
        page_label=chunk.page_label,
    )


def answer_from_generation(question: str, generation: Generation) -> Answer:
    """Build the :class:`Answer`: resolve markers, report the ones that point nowhere."""
    text, valid, invalid = cite(generation.text, generation.contexts)
    citations = tuple(_citation(n, generation.contexts[n - 1]) for n in sorted(valid))
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
    )
