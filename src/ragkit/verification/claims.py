"""An answer as claims and back: its sentences with their ``[n]`` markers, and the answer
rewritten once each claim's supporting passages are decided."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ragkit.analysis import split_sentences
from ragkit.citations import citation_for
from ragkit.types import Answer, Citation, ScoredChunk

__all__ = ["Claim", "Support", "rebuild_answer", "split_claims"]

logger = logging.getLogger(__name__)

_MARKER_RUN = re.compile(r"[ \t]?(?:\[\d+\])+")
_ONE_MARKER = re.compile(r"\[(\d+)\]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")


@dataclass(frozen=True, slots=True)
class Claim:
    """One sentence of an answer and the markers written for it.

    Attributes:
        text: the sentence without its markers.
        start: offset of the sentence in the answer text.
        end: offset just past the sentence.
        markers: the ``[n]`` numbers that follow or sit inside the sentence.
        marker_spans: where those marker runs are in the answer text.
    """

    text: str
    start: int
    end: int
    markers: tuple[int, ...]
    marker_spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Support:
    """The sentence of a passage that supports a claim, and how well."""

    context: int  # 1-based
    start: int  # offset in the chunk text
    end: int
    score: float


def split_claims(text: str) -> list[Claim]:
    """The sentences of ``text``, each with the marker runs that belong to it.

    A marker run belongs to the sentence it sits in (``claim [1].``) or else to the
    sentence just before it (``claim. [1] Next``).
    """
    runs = [(m.start(), m.end()) for m in _MARKER_RUN.finditer(text)]
    masked = list(text)
    for s, e in runs:
        masked[s:e] = " " * (e - s)
    plain = "".join(masked)
    sentences = split_sentences(plain)
    owners: dict[int, list[tuple[int, int]]] = {i: [] for i in range(len(sentences))}
    for s, e in runs:
        owner = None
        for i, (ss, se) in enumerate(sentences):
            if ss <= s < se or se <= s:
                owner = i
            if ss > s:
                break
        if owner is not None:
            owners[owner].append((s, e))
    claims = []
    for i, (ss, se) in enumerate(sentences):
        markers = tuple(int(n) for s, e in owners[i] for n in _ONE_MARKER.findall(text[s:e]))
        claims.append(
            Claim(
                text=_SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(plain[ss:se].split())),
                start=ss,
                end=se,
                markers=markers,
                marker_spans=tuple(owners[i]),
            )
        )
    return claims


def rebuild_answer(
    answer: Answer, claims: Sequence[Claim], decided: Sequence[list[Support]]
) -> Answer:
    """``answer`` with each claim's markers replaced by those of its ``decided`` supports,
    unsupported claims listed, and a citation quoting the supporting sentences of each
    passage; the refusal, with the passages as related sources, when nothing is supported.
    """
    text = answer.text
    edits: list[tuple[int, int, str]] = []
    quotes: dict[int, list[tuple[int, int]]] = {}
    unsupported = []
    for claim, kept in zip(claims, decided, strict=True):
        markers = "".join(f"[{sup.context}]" for sup in kept)
        for sup in kept:
            quotes.setdefault(sup.context, []).append((sup.start, sup.end))
        if not kept:
            unsupported.append(claim.text)
        spans = list(claim.marker_spans)
        if spans:
            first, *rest = spans
            lead = " " if markers and text[first[0]] in " \t" else ""
            edits.append((first[0], first[1], lead + markers))
            edits += [(rs, re_, "") for rs, re_ in rest]
        elif markers:
            edits.append((claim.end, claim.end, " " + markers))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    citations = tuple(
        _citation(n, answer.contexts[n - 1], spans) for n, spans in sorted(quotes.items())
    )
    if not citations:
        logger.info("no claim of the answer is supported by the passages; refusing")
        from ragkit.generation.prompt import REFUSAL

        return replace(
            answer,
            text=REFUSAL,
            citations=(),
            refused=True,
            unsupported=tuple(unsupported),
            related=answer.contexts[:3],
        )
    return replace(answer, text=text.strip(), citations=citations, unsupported=tuple(unsupported))


def _citation(marker: int, hit: ScoredChunk, spans: list[tuple[int, int]]) -> Citation:
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    return citation_for(marker, hit.chunk, start, end)
