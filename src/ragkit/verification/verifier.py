"""CitationVerifier: scores every claim of an answer against every passage sentence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from ragkit.analysis import content_terms, split_sentences
from ragkit.protocols import Embedder
from ragkit.types import Answer, ScoredChunk
from ragkit.verification.claims import Claim, Support, rebuild_answer, split_claims

__all__ = ["CitationVerifier", "VectorMemo"]

#: Vectors already computed for one question, by text: :meth:`CitationVerifier.relevance`
#: and :meth:`CitationVerifier.verify` given the same memo embed each text once.
VectorMemo: TypeAlias = dict[str, NDArray[np.float32]]

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


class CitationVerifier:
    """Verifies, repairs and quotes the citations of an answer.

    Example:
        >>> verifier = CitationVerifier(embedder)  # doctest: +SKIP
        >>> RetrievalQA(retriever, generator, verifier=verifier)  # doctest: +SKIP

    Args:
        embedder: embeds claims and passage sentences. Not a knowledge base's
            ``CachedEmbedder``: they are not chunks, and caching them would make every
            question write to the knowledge base. ``RAG`` gives the verifier and the
            extractive generator one :class:`~ragkit.embeddings.recent.RecentVectors`,
            so that they embed a question's passage sentences once between them.
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

    def _vectors(self, texts: Sequence[str], memo: VectorMemo | None) -> NDArray[np.float32]:
        """The vectors of ``texts`` (not empty), embedding only the distinct texts that
        ``memo`` lacks, and adding them to it."""
        memo = {} if memo is None else memo
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, self.embedder.embed_documents(missing), strict=True))
        return np.stack([memo[t] for t in texts])

    def relevance(
        self, question: str, hits: Sequence[ScoredChunk], memo: VectorMemo | None = None
    ) -> float:
        """Best cosine similarity between the question and any retrieved sentence.

        Args:
            memo: pass the same dict to :meth:`verify` for the answer to this question,
                so that the passage sentences are embedded once.
        """
        sentences = [
            hit.chunk.text[s:e] for hit in hits for s, e in split_sentences(hit.chunk.text)
        ]
        if not sentences:
            return 0.0
        vectors = self._vectors(sentences, memo)
        return float(np.max(vectors @ self.embedder.embed_query(question)))

    def _supports(
        self,
        question: str,
        claims: Sequence[Claim],
        contexts: Sequence[ScoredChunk],
        memo: VectorMemo | None,
    ) -> list[list[Support]]:
        """For each claim, the best-supporting sentence of each context."""
        units = [
            (n, s, e)
            for n, hit in enumerate(contexts, 1)
            for s, e in split_sentences(hit.chunk.text)
        ]
        if not units or not claims:
            return [[] for _ in claims]
        texts = [contexts[n - 1].chunk.text[s:e] for n, s, e in units]
        vectors = self._vectors([*texts, *(c.text for c in claims)], memo)
        cosine = vectors[len(texts) :] @ vectors[: len(texts)].T
        unit_terms = [set(content_terms(t)) for t in texts]
        passage_terms: list[set[str]] = [set() for _ in contexts]  # union of its sentences
        for (n, _, _), terms_of_unit in zip(units, unit_terms, strict=True):
            passage_terms[n - 1] |= terms_of_unit
        given = set(content_terms(question)) | _META_TERMS
        out = []
        for i, claim in enumerate(claims):
            terms = set(content_terms(claim.text))
            novel = terms - given
            best: dict[int, Support] = {}
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
                    best[n] = Support(n, s, e, score)
            out.append(sorted(best.values(), key=lambda x: -x.score))
        return out

    def verify(self, answer: Answer, memo: VectorMemo | None = None) -> Answer:
        """The answer with verified markers, flagged claims and quoted citations.

        Args:
            memo: the dict given to :meth:`relevance` for the same question, if any.
        """
        if answer.refused or not answer.contexts:
            return answer
        claims = [c for c in split_claims(answer.text) if content_terms(c.text)]
        if not claims:
            return answer
        supports = self._supports(answer.question, claims, answer.contexts, memo)
        threshold = self.threshold
        while True:
            decided = [self._decide(c, s, threshold) for c, s in zip(claims, supports, strict=True)]
            if any(decided) or self.decay >= 1 or threshold * self.decay < self.min_threshold:
                break
            threshold *= self.decay
        return rebuild_answer(answer, claims, decided)

    @staticmethod
    def _decide(claim: Claim, supports: list[Support], threshold: float) -> list[Support]:
        """The supports a claim keeps: its own valid markers, else the best other passage."""
        good = {s.context: s for s in supports if s.score >= threshold}
        kept = [good[m] for m in dict.fromkeys(claim.markers) if m in good]
        if kept:
            return kept
        return [supports[0]] if supports and supports[0].score >= threshold else []
