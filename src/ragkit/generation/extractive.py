"""An answer without a language model: the retrieved sentences most relevant to the question."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragkit.analysis import code_spans, content_terms, prose_ratio, split_sentences
from ragkit.generation.prompt import REFUSAL
from ragkit.protocols import Embedder
from ragkit.types import Generation, ScoredChunk

__all__ = ["ExtractiveGenerator"]

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class _Candidate:
    context: int  # 1-based number of the context
    start: int  # offset in the chunk text
    end: int
    text: str
    lexical: float
    semantic: float
    score: float


class ExtractiveGenerator:
    """Answers by quoting the retrieved sentences that best match the question.

    No language model is involved, so nothing is made up: every sentence of the answer
    is copied from a source and carries its ``[n]``. Sentences are scored by how much
    of the question's (idf-weighted) vocabulary they contain and, when an embedder is
    given, by embedding similarity to the question. When no sentence shares a content
    word with the question and none is semantically close, the answer is the refusal.

    Example:
        >>> gen = ExtractiveGenerator(max_sentences=2)
        >>> gen.generate("What colour is the sky?", hits).text  # doctest: +SKIP
        'The sky is blue. [1]'

    Args:
        embedder: optional; adds semantic similarity to the lexical score.
        max_sentences: at most this many sentences in the answer.
        relative_cutoff: a sentence must score at least this share of the best one.
        min_semantic: with an embedder, a question sharing no word with any sentence is
            still answered when the best sentence has at least this cosine similarity.
    """

    extractive = True

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        max_sentences: int = 3,
        relative_cutoff: float = 0.6,
        min_semantic: float = 0.5,
    ) -> None:
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.relative_cutoff = relative_cutoff
        self.min_semantic = min_semantic

    def _candidates(self, question: str, contexts: Sequence[ScoredChunk]) -> list[_Candidate]:
        raw: list[tuple[int, int, int, str, list[str]]] = []
        for n, hit in enumerate(contexts, 1):
            text = hit.chunk.text
            code = code_spans(text)
            for s, e in split_sentences(text):
                if any(cs < e and s < ce for cs, ce in code):
                    continue  # code is not an answer sentence
                sentence = _SPACE.sub(" ", text[s:e])
                if sentence.startswith("#"):
                    continue  # a Markdown heading names a topic, it does not answer
                terms = content_terms(sentence)
                if len(terms) >= 2:
                    raw.append((n, s, e, sentence, terms))
        if not raw:
            return []
        query = set(content_terms(question))
        df = Counter(t for *_, terms in raw for t in set(terms))
        idf = {t: math.log(1 + len(raw) / df.get(t, 0.5)) for t in query}
        total = sum(idf.values()) or 1.0
        semantic = np.zeros(len(raw), dtype=np.float32)
        if self.embedder is not None:
            vectors = self.embedder.embed_documents([r[3] for r in raw])
            semantic = vectors @ self.embedder.embed_query(question)
        out = []
        for i, (n, s, e, sentence, terms) in enumerate(raw):
            lexical = sum(idf[t] for t in query & set(terms)) / total
            sem = float(semantic[i])
            score = (0.5 * lexical + 0.5 * max(sem, 0.0)) if self.embedder else lexical
            if prose_ratio(sentence) < 0.75:
                score *= 0.5  # tables, markup and inline code quote badly
            score += 0.02 / n  # ties go to the better-ranked context
            out.append(_Candidate(n, s, e, sentence, lexical, sem, score))
        return out

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        contexts = tuple(contexts)
        candidates = self._candidates(question, contexts)
        relevant = [
            c
            for c in candidates
            if c.lexical > 0 or (self.embedder is not None and c.semantic >= self.min_semantic)
        ]
        if not relevant:
            return Generation(
                text=REFUSAL, contexts=contexts, model="extractive", extractive=True, refused=True
            )
        relevant.sort(key=lambda c: -c.score)
        best = relevant[0].score
        chosen = [c for c in relevant if c.score >= self.relative_cutoff * best]
        chosen = chosen[: self.max_sentences]
        text = " ".join(f"{c.text} [{c.context}]" for c in chosen)
        return Generation(text=text, contexts=contexts, model="extractive", extractive=True)
