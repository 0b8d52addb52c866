"""An answer without a language model: the retrieved sentences most relevant to the question."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragkit.analysis import STOPWORDS, code_spans, content_terms, prose_ratio, split_sentences
from ragkit.generation.prompt import REFUSAL
from ragkit.protocols import Embedder
from ragkit.types import Generation, ScoredChunk

__all__ = ["ExtractiveGenerator"]

_SPACE = re.compile(r"\s+")

# What kind of answer a question asks for, and the tokens that can be one: a sentence
# holding such a token that the question does not already have is likelier to answer.
_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve twenty thirty forty "
    "fifty hundred hundreds thousand thousands million millions billion billions dozen"
)
_MONTHS = "January February March April May June July August September October November December"
_UNITS = (
    "seconds? minutes? hours? days? nights? weeks? months? years? decades? century centuries "
    "times? once twice"
)
_TOKENS = {
    "time": re.compile(
        r"\b\d{2,4}s?\b|\b\d+(?:st|nd|rd|th)\b"
        rf"|\b(?:{_MONTHS.replace(' ', '|')}|{_UNITS.replace(' ', '|')})\b",
        re.IGNORECASE,
    ),
    "number": re.compile(
        rf"\b\d[\d,.]*%?|\b(?:{_NUMBER_WORDS.replace(' ', '|')}|{_UNITS.replace(' ', '|')})\b",
        re.IGNORECASE,
    ),
    "name": re.compile(r"\b[A-Z][\w'-]*[a-z][\w'-]*"),
}
_QUESTION_TYPES = (
    (
        "time",
        re.compile(
            r"\bwhen (?:did|was|were|is|are|does|do|had|has|have|will|would|could|can)\b"
            r"|\b(?:what|which|in what) (?:year|century|decade|date|month|day)\b",
            re.I,
        ),
    ),
    (
        "number",
        re.compile(
            r"\bhow (?:many|much|long|old|far|big|large|high|tall|often|fast)\b"
            r"|\bwhat (?:percentage|percent|proportion|fraction|number|amount)\b",
            re.I,
        ),
    ),
    (
        "name",
        re.compile(
            r"\bwho(?:m|se)?\b|\bwhere\b|\b(?:what|which) (?:city|country|state|team|company)\b",
            re.I,
        ),
    ),
)


# First words of a sentence that goes on about the subject of the sentence before it.
_CONTINUATIONS = frozenset(
    ["he", "she", "it", "they", "his", "her", "its", "their", "this", "these", "there"]
)


def _answer_tokens(question: str) -> re.Pattern[str] | None:
    """The pattern of tokens that could answer ``question`` (years for "when", numbers
    for "how many", names for "who"), or None when its kind is not recognised."""
    for kind, pattern in _QUESTION_TYPES:
        if pattern.search(question):
            return _TOKENS[kind]
    return None


def _has_new_answer_token(sentence: str, question: str, tokens: re.Pattern[str]) -> bool:
    asked = {m.group().lower() for m in tokens.finditer(question)}
    asked |= {w.lower() for w in re.findall(r"[\w'-]+", question)}
    return any(
        m.group().lower() not in asked and m.group().lower() not in STOPWORDS
        for m in tokens.finditer(sentence)
    )


@dataclass(frozen=True, slots=True)
class _Candidate:
    context: int  # 1-based number of the context
    start: int  # offset in the chunk text
    end: int
    text: str
    lexical: float
    semantic: float
    relevance: float  # how well the sentence itself matches the question
    score: float  # relevance plus the weight of its passage's retrieval score

    def matches(self, min_semantic: float | None) -> bool:
        """Shares a content word with the question, or is semantically close to it."""
        return self.lexical > 0 or (min_semantic is not None and self.semantic >= min_semantic)


def _retrieval_weights(contexts: Sequence[ScoredChunk]) -> list[float]:
    """Each context's retrieval score as a share of the best one, in [0, 1].

    Retrievers score on different scales (fused scores, cosines, reranker logits), so
    only the ratio to the best is used; with no positive score every weight is 0.
    """
    top = max((hit.score for hit in contexts), default=0.0)
    if top <= 0:
        return [0.0] * len(contexts)
    return [min(max(hit.score / top, 0.0), 1.0) for hit in contexts]


class ExtractiveGenerator:
    """Answers by quoting the passage sentences that best match the question.

    No language model is involved, so nothing is made up: every sentence of the answer
    is copied from a source and carries its ``[n]``. Sentences are scored by how much
    of the question's (idf-weighted) vocabulary they contain, by embedding similarity to
    the question when an embedder is given, and by the retrieval score of their passage.
    The best sentence picks the passage; the answer quotes that sentence first, then
    the next best ones *of the same passage* (and a few of the same document's other
    passages) that add to it, in reading order, so that every citation points at the
    source that answered (sentences from other documents, often a neighbouring paragraph
    that does not hold the answer, halved citation precision on SQuAD). A further
    sentence adds to the answer when it holds the kind of answer the question asks for
    (a time, a number, a name; for questions of those kinds) and a word not quoted yet.

    The answer is the refusal when no sentence shares a content word with the question
    and none is semantically close, or, with ``min_margin``, when the best sentence of
    another document scores almost as high: the passages disagree and quoting either
    may cite the wrong one (see ``docs/benchmarks/squad.md`` for the trade-off).

    Example:
        >>> gen = ExtractiveGenerator(max_sentences=2)
        >>> gen.generate("What colour is the sky?", hits).text  # doctest: +SKIP
        'The sky is blue. [1]'

    Args:
        embedder: optional; adds semantic similarity to the lexical score.
        max_sentences: at most this many sentences of the best sentence's passage.
        same_document: at most this many more sentences from other passages of the same
            document (matching the question, and at least ``relative_cutoff`` as well
            as the best sentence); 0 quotes one passage only.
        relative_cutoff: a sentence must score at least this share of the best one.
        min_semantic: with an embedder, a question sharing no word with any sentence is
            still answered when the best sentence has at least this cosine similarity.
        retrieval_weight: added to a sentence's score, times its passage's retrieval
            score relative to the best passage (0 ignores the retrieval order).
        min_margin: refuse when the best sentence from another document scores within
            this of the best sentence (0 never refuses on it).
        best_first: quote the best sentence first (the others in reading order; table
            rows keep their order); False quotes everything in reading order.
        typed_extras: for a question asking for a time ("when did", "what year"), a
            number ("how many") or a name ("who", "where"), quote a further sentence
            only when it holds such a token that the question does not.
        min_new_terms: a further sentence must add this many content words the quoted
            sentences lack (1 drops restatements and overlapping chunks' repeats).
        follow_on: also quote the sentence right after the best one when it goes on
            about the same subject ("He ...", "It ...").
        max_words: quote at most this many words (the best sentence always, whole);
            None: no cap. Caps cost answers on SQuAD (``docs/benchmarks/squad.md``).
    """

    extractive = True

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        max_sentences: int = 5,
        same_document: int = 2,
        relative_cutoff: float = 0.3,
        min_semantic: float = 0.5,
        retrieval_weight: float = 0.1,
        min_margin: float = 0.0,
        best_first: bool = True,
        typed_extras: bool = True,
        min_new_terms: int = 1,
        follow_on: bool = True,
        max_words: int | None = None,
    ) -> None:
        self.follow_on = follow_on
        self.typed_extras = typed_extras
        self.max_words = max_words
        self.min_new_terms = min_new_terms
        self.best_first = best_first
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.same_document = same_document
        self.relative_cutoff = relative_cutoff
        self.min_semantic = min_semantic
        self.retrieval_weight = retrieval_weight
        self.min_margin = min_margin

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
        weights = _retrieval_weights(contexts)
        out = []
        for i, (n, s, e, sentence, terms) in enumerate(raw):
            lexical = sum(idf[t] for t in query & set(terms)) / total
            sem = float(semantic[i])
            relevance = (0.5 * lexical + 0.5 * max(sem, 0.0)) if self.embedder else lexical
            if prose_ratio(sentence) < 0.75:
                relevance *= 0.5  # tables, markup and inline code quote badly
            score = relevance + self.retrieval_weight * weights[n - 1] + 0.02 / n  # ties: rank
            out.append(_Candidate(n, s, e, sentence, lexical, sem, relevance, score))
        return out

    @staticmethod
    def _follow_on(
        best: _Candidate, candidates: list[_Candidate], chosen: list[_Candidate]
    ) -> list[_Candidate]:
        """The sentence right after the best one when it goes on about the same subject
        ("He ...", "It ..."): it often holds the answer the best sentence leads up to."""
        after = [c for c in candidates if c.context == best.context and c.start >= best.end]
        if not after:
            return []
        nxt = min(after, key=lambda c: c.start)
        first = nxt.text.split(" ", 1)[0].lower()
        if first in _CONTINUATIONS and all(c.text != nxt.text for c in chosen):
            return [nxt]
        return []

    def _concise(
        self, question: str, best: _Candidate, ranked: list[_Candidate]
    ) -> list[_Candidate]:
        """The best sentence, then (best scored first) those that add something to it:
        for a question asking for a time, a number or a name (with ``typed_extras``), a
        token of that kind the question does not hold; and at least ``min_new_terms``
        content words not yet quoted; all within ``max_words``."""
        known = set(content_terms(best.text))
        words = len(best.text.split())
        kept = [best]
        tokens = _answer_tokens(question) if self.typed_extras else None
        for candidate in ranked:
            if candidate is best:
                continue
            if tokens is not None and not _has_new_answer_token(candidate.text, question, tokens):
                continue  # the question asks for a year, a number or a name: this has none
            terms = set(content_terms(candidate.text))
            if len(terms - known) < self.min_new_terms:
                continue  # a restatement, or the same sentence of an overlapping chunk
            length = len(candidate.text.split())
            if self.max_words is not None and words + length > self.max_words:
                continue
            kept.append(candidate)
            known |= terms
            words += length
        return kept

    def _refusal(self, contexts: tuple[ScoredChunk, ...]) -> Generation:
        return Generation(
            text=REFUSAL, contexts=contexts, model="extractive", extractive=True, refused=True
        )

    def generate(self, question: str, contexts: Sequence[ScoredChunk]) -> Generation:
        contexts = tuple(contexts)
        candidates = sorted(self._candidates(question, contexts), key=lambda c: -c.score)
        min_semantic = self.min_semantic if self.embedder is not None else None
        relevant = [c for c in candidates if c.matches(min_semantic)]
        if not relevant:
            return self._refusal(contexts)
        best = relevant[0]
        if self.min_margin > 0:
            document = contexts[best.context - 1].chunk.document_id
            rival = next(
                (c for c in relevant if contexts[c.context - 1].chunk.document_id != document),
                None,
            )
            if rival is not None and best.score - rival.score < self.min_margin:
                return self._refusal(contexts)
        # Every sentence of the best passage may join it (it is the context the answer
        # was found in), as long as it matches the question nearly as well; so may a few
        # matching sentences of the same document's other passages.
        floor = self.relative_cutoff * best.relevance
        chosen = [c for c in candidates if c.context == best.context and c.relevance >= floor]
        chosen = chosen[: self.max_sentences]
        document = contexts[best.context - 1].chunk.document_id
        quoted = {c.text for c in chosen}
        others = [
            c
            for c in relevant
            if c.context != best.context
            and contexts[c.context - 1].chunk.document_id == document
            and c.relevance >= floor
            and c.text not in quoted  # overlapping chunks repeat sentences
        ]
        chosen += others[: self.same_document]
        if self.follow_on:
            chosen += self._follow_on(best, candidates, chosen)
        chosen = self._concise(question, best, sorted(chosen, key=lambda c: -c.score))
        if self.best_first and " | " not in best.text:  # a table's rows keep their order
            rest = sorted((c for c in chosen if c is not best), key=lambda c: (c.context, c.start))
            chosen = [best, *rest]
        else:
            chosen.sort(key=lambda c: (c.context, c.start))
        # A table row (loaders/tables.py: "Name: value | Name: value") stands on a line of
        # its own, so the answer's claims split per row as the passage's sentences do.
        rows = [" | " in c.text for c in chosen]
        text = "".join(
            ("" if i == 0 else "\n" if rows[i] or rows[i - 1] else " ") + f"{c.text} [{c.context}]"
            for i, c in enumerate(chosen)
        )
        return Generation(text=text, contexts=contexts, model="extractive", extractive=True)
