"""Check every claim of an answer against the passages it cites.

Markers that a model writes are never trusted on their own. Each sentence of the answer
is compared with every sentence of the retrieved chunks, by embedding similarity plus
word overlap (RAGFlow's ``insert_citations`` weights: 0.9 vector, 0.1 token), and the
supporting sentence must also contain the claim's own facts: the content words it adds
to the question. A marker whose passage does not support its sentence is dropped, or
re-pointed to the passage that does; a sentence that no passage supports is flagged in
``Answer.unsupported``. Every citation then quotes the supporting sentences with their
exact character span.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ragkit.analysis import content_terms, split_sentences
from ragkit.citations import citation_for
from ragkit.protocols import Embedder
from ragkit.types import Answer, Citation, ScoredChunk

__all__ = ["CitationVerifier", "Claim"]

logger = logging.getLogger(__name__)

_MARKER_RUN = re.compile(r"[ \t]?(?:\[\d+\])+")
_ONE_MARKER = re.compile(r"\[(\d+)\]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")
# Words about the task, not claims about the world ("The answer is ...").
_META_TERMS = frozenset(
    content_terms("answer question context passage document information according based")
)


def _restates(novel: set[str], sentence: set[str], passage: set[str]) -> bool:
    """Every fact a claim adds to the question is in the sentence (names may be elsewhere
    in its passage): a restatement of a table row or of part of a long sentence, whose
    cosine is diluted by the words the claim leaves out. Numbers must be in the sentence."""
    if not novel & sentence:
        return False
    return all(t in sentence or (t in passage and not any(c.isdigit() for c in t)) for t in novel)


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


@dataclass(frozen=True, slots=True)
class _Support:
    context: int  # 1-based
    start: int  # offset in the chunk text
    end: int
    score: float


class CitationVerifier:
    """Verifies, repairs and quotes the citations of an answer.

    Example:
        >>> verifier = CitationVerifier(embedder)  # doctest: +SKIP
        >>> RetrievalQA(retriever, generator, verifier=verifier)  # doctest: +SKIP

    Args:
        embedder: embeds claims and passage sentences (a ``CachedEmbedder`` makes the
            passage side nearly free on repeated chunks).
        vector_weight: weight of cosine similarity in the support score.
        token_weight: weight of word overlap (share of the claim's content words).
        threshold: support score a passage sentence needs, at first. The default, 0.78,
            was chosen on 50 claims of SmolLM2-135M answers to SQuAD questions, each
            labelled by eye as supported or not by its best passage sentence: it keeps
            7 of the 9 supported claims and 2 of the 41 others, where 0.63 kept 8 and
            19 (see ``docs/benchmarks/squad.md``). Extractive answers quote
            passages word for word (score 1.0) and are not affected.
        decay: when no claim of the answer is supported, the threshold is multiplied by
            this and tried again (RAGFlow's decaying threshold) ...
        min_threshold: ... down to this floor. By default the floor is the threshold,
            so the threshold never decays: on the labelled claims the decayed
            thresholds (0.63, then 0.504) accepted mostly unsupported paraphrases.
        min_coverage: share of a claim's new content words (those not in the question,
            nor words about the task such as "answer") that its supporting sentence must
            contain. 0.5 rejects a sentence that is similar to the claim but holds
            other facts (another name, another number) and was chosen with
            ``threshold`` on the same labelled claims; 0 turns the check off.
        exact_floor: a claim whose new content words all appear in a sentence (numbers
            in the sentence itself, names anywhere in its passage) is supported by it
            from this score up instead of ``threshold``: "The staging environment uses
            port 8443." restates the CSV row ``staging,staging.skyline.example,8443,
            eu-west`` at a score near 0.5, "The default timeout for Skyline is 5
            seconds." half of a longer sentence. Wrong names and numbers still fail.
            On the 50 labelled claims (sentence-level check) it keeps the same 7
            supported claims plus 4 unsupported ones that restate their sentence.
        min_relevance: the chain refuses without generating when no retrieved sentence
            has at least this cosine similarity to the question. The default, 0.48, was
            calibrated for the bundled all-MiniLM-L6-v2 on SQuAD v1.1 dev questions: it
            refuses at most 5% of answerable questions on a calibration half (6.0% on the
            held-out half) and 87% of the same questions once their article is left out
            of the index (see ``docs/components/generation.md``). Recalibrate it with
            ``bench/calibrate_refusal.py`` for another embedder.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        vector_weight: float = 0.9,
        token_weight: float = 0.1,
        threshold: float = 0.78,
        decay: float = 0.8,
        min_threshold: float = 0.78,
        min_relevance: float = 0.48,
        min_coverage: float = 0.5,
        exact_floor: float = 0.45,
    ) -> None:
        self.embedder = embedder
        self.vector_weight = vector_weight
        self.token_weight = token_weight
        self.threshold = threshold
        self.decay = decay
        self.min_threshold = min_threshold
        self.min_relevance = min_relevance
        self.min_coverage = min_coverage
        self.exact_floor = exact_floor

    def relevance(self, question: str, hits: Sequence[ScoredChunk]) -> float:
        """Best cosine similarity between the question and any retrieved sentence."""
        sentences = [
            hit.chunk.text[s:e] for hit in hits for s, e in split_sentences(hit.chunk.text)
        ]
        if not sentences:
            return 0.0
        vectors = self.embedder.embed_documents(sentences)
        return float(np.max(vectors @ self.embedder.embed_query(question)))

    def _supports(
        self, question: str, claims: Sequence[Claim], contexts: Sequence[ScoredChunk]
    ) -> list[list[_Support]]:
        """For each claim, the best-supporting sentence of each context."""
        units = [
            (n, s, e)
            for n, hit in enumerate(contexts, 1)
            for s, e in split_sentences(hit.chunk.text)
        ]
        if not units or not claims:
            return [[] for _ in claims]
        texts = [contexts[n - 1].chunk.text[s:e] for n, s, e in units]
        unit_vectors = self.embedder.embed_documents(texts)
        claim_vectors = self.embedder.embed_documents([c.text for c in claims])
        cosine = claim_vectors @ unit_vectors.T
        unit_terms = [set(content_terms(t)) for t in texts]
        passage_terms: list[set[str]] = [set() for _ in contexts]  # union of its sentences
        for (n, _, _), terms_of_unit in zip(units, unit_terms, strict=True):
            passage_terms[n - 1] |= terms_of_unit
        given = set(content_terms(question)) | _META_TERMS
        out = []
        for i, claim in enumerate(claims):
            terms = set(content_terms(claim.text))
            novel = terms - given
            best: dict[int, _Support] = {}
            for j, (n, s, e) in enumerate(units):
                if novel and len(novel & unit_terms[j]) < self.min_coverage * len(novel):
                    continue  # similar words, other facts
                overlap = len(terms & unit_terms[j]) / len(terms) if terms else 0.0
                score = self.vector_weight * float(cosine[i, j]) + self.token_weight * overlap
                if score >= self.exact_floor and _restates(
                    novel, unit_terms[j], passage_terms[n - 1]
                ):
                    score = max(score, self.threshold)
                if n not in best or score > best[n].score:
                    best[n] = _Support(n, s, e, score)
            out.append(sorted(best.values(), key=lambda x: -x.score))
        return out

    def verify(self, answer: Answer) -> Answer:
        """The answer with verified markers, flagged claims and quoted citations."""
        if answer.refused or not answer.contexts:
            return answer
        claims = [c for c in split_claims(answer.text) if content_terms(c.text)]
        if not claims:
            return answer
        supports = self._supports(answer.question, claims, answer.contexts)
        threshold = self.threshold
        while True:
            decided = [self._decide(c, s, threshold) for c, s in zip(claims, supports, strict=True)]
            if any(decided) or self.decay >= 1 or threshold * self.decay < self.min_threshold:
                break
            threshold *= self.decay
        return self._rebuild(answer, claims, decided)

    @staticmethod
    def _decide(claim: Claim, supports: list[_Support], threshold: float) -> list[_Support]:
        """The supports a claim keeps: its own valid markers, else the best other passage."""
        good = {s.context: s for s in supports if s.score >= threshold}
        kept = [good[m] for m in dict.fromkeys(claim.markers) if m in good]
        if kept:
            return kept
        return [supports[0]] if supports and supports[0].score >= threshold else []

    def _rebuild(
        self, answer: Answer, claims: Sequence[Claim], decided: Sequence[list[_Support]]
    ) -> Answer:
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
            self._citation(n, answer.contexts[n - 1], spans) for n, spans in sorted(quotes.items())
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
        return replace(
            answer, text=text.strip(), citations=citations, unsupported=tuple(unsupported)
        )

    @staticmethod
    def _citation(marker: int, hit: ScoredChunk, spans: list[tuple[int, int]]) -> Citation:
        start, end = min(s for s, _ in spans), max(e for _, e in spans)
        return citation_for(marker, hit.chunk, start, end)
