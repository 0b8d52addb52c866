"""Step 2, mine negatives: passages of the kb that look relevant to a query but are not.

A hard negative teaches more than a random one, but the hardest candidates are often
unlabelled positives (a second abstract supporting the same claim, the next chunk of
the same document), and training against them is the classic failure of negative
mining. :func:`select_negatives` therefore skips, in order:

* the positive's own document, and every document that is the positive of another
  pair with the same query;
* the ``skip_top`` best-ranked remaining candidates;
* candidates whose cosine to the positive passage is at least ``max_similarity``
  (near-copies of it);
* candidates the base model scores above ``margin`` times the positive's own score
  (NV-Retriever's "positive-aware" filter: a candidate that close is more likely a
  missed positive than a negative).

Duplicates inside a training batch are avoided by the trainer's ``no_duplicates``
batch sampler (see :mod:`ragkit.training.train`), not here.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError
from ragkit.protocols import Embedder
from ragkit.training.pairs import Pair, Progress
from ragkit.types import Chunk

__all__ = [
    "Candidate",
    "NegativeRules",
    "corpus_of",
    "embed_queries",
    "mine_negatives",
    "pairs_corpus",
    "select_negatives",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NegativeRules:
    """What counts as a hard negative.

    Attributes:
        count: negatives per pair.
        depth: candidates ranked per query (the pool the negatives come from).
        skip_top: best-ranked candidates skipped (after the positive's document).
        max_similarity: cosine to the positive at or above which a candidate is
            treated as a copy of it.
        margin: candidates scored above ``margin`` x the positive's score are skipped.
    """

    count: int = 3
    depth: int = 30
    skip_top: int = 3
    max_similarity: float = 0.9
    margin: float = 0.95

    def __post_init__(self) -> None:
        if self.count <= 0 or self.depth <= 0 or self.skip_top < 0:
            raise ConfigurationError("count and depth must be positive, skip_top >= 0")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A passage ranked for a query: its text, document, query score, and cosine to
    the positive."""

    text: str
    document_id: str
    score: float
    positive_similarity: float


def select_negatives(
    candidates: Sequence[Candidate],
    *,
    positive: str,
    positive_score: float,
    excluded_documents: set[str],
    rules: NegativeRules,
) -> list[str]:
    """The negatives among ``candidates`` (best first) under ``rules``; see the module."""
    remaining = [
        c for c in candidates if c.document_id not in excluded_documents and c.text != positive
    ]
    chosen: list[str] = []
    for candidate in remaining[rules.skip_top :]:
        if candidate.positive_similarity >= rules.max_similarity:
            continue
        if positive_score > 0 and candidate.score > rules.margin * positive_score:
            continue
        if candidate.text in chosen:
            continue
        chosen.append(candidate.text)
        if len(chosen) == rules.count:
            break
    return chosen


def _unit(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def embed_queries(embedder: Embedder, queries: Sequence[str]) -> NDArray[np.float32]:
    """Query vectors, batched for ragkit's model embedders (their query prefix added,
    one encode per 256 queries), else one ``embed_query`` each. A
    :class:`~ragkit.embeddings.CachedEmbedder` passes queries through, so it is looked
    through; any other wrapper may change queries and is called as it is."""
    from ragkit.embeddings import CachedEmbedder

    model: Any = embedder
    while isinstance(model, CachedEmbedder):
        model = model.inner
    encode = getattr(model, "_encode", None)
    prefix = getattr(model, "query_prefix", None)
    if not queries:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    if callable(encode) and isinstance(prefix, str):
        rows = [
            encode([prefix + q for q in queries[i : i + 256]]) for i in range(0, len(queries), 256)
        ]
        return _unit(np.vstack(rows).astype(np.float32))
    return _unit(np.vstack([embedder.embed_query(q) for q in queries]).astype(np.float32))


def _embed(
    embedder: Embedder, texts: Sequence[str], what: str, progress: Progress | None, batch: int
) -> NDArray[np.float32]:
    parts = []
    for i in range(0, len(texts), batch):
        parts.append(embedder.embed_documents(list(texts[i : i + batch])))
        if progress is not None:
            progress(what, min(i + batch, len(texts)), len(texts))
    if not parts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    return _unit(np.vstack(parts).astype(np.float32))


def corpus_of(chunks: Sequence[Chunk]) -> list[tuple[str, str]]:
    """``(text, document_id)`` of each chunk: the corpus :func:`mine_negatives` takes."""
    return [(c.text, c.document_id) for c in chunks]


def pairs_corpus(pairs: Sequence[Pair]) -> list[tuple[str, str]]:
    """The passages of the pairs themselves (positives and negatives) as a corpus, for
    mining without a kb."""
    corpus = [(p.positive, p.group) for p in pairs]
    corpus += [(n, "") for p in pairs for n in p.negatives]
    return corpus


def mine_negatives(
    pairs: Sequence[Pair],
    corpus: Sequence[tuple[str, str]],
    embedder: Embedder,
    rules: NegativeRules | None = None,
    *,
    progress: Progress | None = None,
    batch: int = 256,
    rank: Callable[[str, int], list[str]] | None = None,
) -> list[Pair]:
    """``pairs`` with hard negatives from ``corpus`` added (pairs keep any they had).

    Candidates are ranked by ``embedder`` (the base model; wrap it in a
    :class:`~ragkit.embeddings.CachedEmbedder` on the kb's cache and the corpus is
    not embedded again), or by ``rank(query, depth)`` when given: the texts another
    retriever returns, best first (a reranker learns most from the candidates its own
    first stage hands it). The filters use ``embedder``'s cosines either way. A pair
    without a ``document_id`` is matched to the corpus by its positive's text.

    Args:
        pairs: the training pairs.
        corpus: ``(text, document_id)`` of the passages negatives come from: the kb's
            chunks (:func:`corpus_of`), or the pairs' own passages.
        embedder: ranks the candidates.
        rules: what counts as a hard negative (:class:`NegativeRules`).
        progress: called with ``(what, done, total)``.
        rank: ranks the candidates instead of ``embedder`` (texts outside ``corpus``
            are skipped).
    """
    rules = rules or NegativeRules()
    if not pairs or not corpus:
        return list(pairs)
    texts: list[str] = []
    documents: list[str] = []
    seen: set[str] = set()
    for text, document_id in corpus:
        if text not in seen:
            seen.add(text)
            texts.append(text)
            documents.append(document_id)
    by_text = dict(zip(texts, documents, strict=True))
    index = {text: j for j, text in enumerate(texts)}
    corpus_vectors = _embed(embedder, texts, "corpus", progress, batch)
    positives = _embed(embedder, [p.positive for p in pairs], "positives", progress, batch)
    queries = embed_queries(embedder, [p.query for p in pairs])

    # Every document that is a positive of the query, in any pair.
    known: dict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        known[pair.query].add(pair.document_id or by_text.get(pair.positive, pair.group))

    depth = min(rules.depth, len(texts))
    mined: list[Pair] = []
    for start in range(0, len(pairs), batch):
        block = queries[start : start + batch]
        scores = block @ corpus_vectors.T
        if rank is None:  # the embedder's own order (``rank`` orders them otherwise)
            top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        for row, pair_index in enumerate(range(start, start + len(block))):
            pair = pairs[pair_index]
            if rank is None:
                order = top[row][np.argsort(-scores[row, top[row]])]
            else:
                order = [index[t] for t in rank(pair.query, depth) if t in index]
            positive_vector = positives[pair_index]
            candidates = [
                Candidate(
                    texts[j],
                    documents[j],
                    float(scores[row, j]),
                    float(corpus_vectors[j] @ positive_vector),
                )
                for j in order
            ]
            negatives = select_negatives(
                candidates,
                positive=pair.positive,
                positive_score=float(block[row] @ positive_vector),
                excluded_documents=known[pair.query],
                rules=rules,
            )
            extra = tuple(n for n in negatives if n not in pair.negatives)
            mined.append(replace(pair, negatives=pair.negatives + extra))
        if progress is not None:
            progress("negatives", min(start + batch, len(pairs)), len(pairs))
    short = sum(1 for p in mined if len(p.negatives) < rules.count)
    logger.info(
        "mined negatives for %d pairs (%d with fewer than %d)", len(mined), short, rules.count
    )
    return mined
