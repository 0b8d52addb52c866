"""Maximal marginal relevance: relevant chunks that do not repeat each other."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError
from ragkit.protocols import Embedder
from ragkit.types import ScoredChunk

__all__ = ["MMRReranker"]

logger = logging.getLogger(__name__)


def _unit_rows(vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


class MMRReranker:
    """Picks chunks one at a time, trading relevance against similarity to those picked.

    Maximal marginal relevance (Carbonell and Goldstein, 1998). Each step picks the
    candidate with the highest::

        lambda_ * cos(query, chunk) - (1 - lambda_) * max(0, max cos(chunk, picked))

    so a near-copy of a chunk already picked is pushed down, and the context the
    generator sees covers more ground. Negative similarities count as 0: a chunk is not
    rewarded for pointing away from the others. The first pick is the most relevant
    chunk; ties go to the more relevant chunk, then to the retriever's order.

    The chunks' texts are embedded with ``embedder`` on every call; pass the embedder
    that built the index wrapped in a :class:`~ragkit.embeddings.CachedEmbedder` (as
    ``RAG.embedder`` is) and that is a cache lookup.

    Example:
        >>> from ragkit.testing import FakeEmbedder
        >>> reranker = MMRReranker(FakeEmbedder(), lambda_=0.5)
        >>> qa = RetrievalQA(retriever, generator, reranker=reranker, fetch_k=20)  # doctest: +SKIP

    Args:
        embedder: embeds the query and the chunk texts.
        lambda_: 1 ranks by relevance alone; 0 by novelty alone (after the first pick).

    Raises:
        ConfigurationError: ``lambda_`` is outside 0..1.
    """

    def __init__(self, embedder: Embedder, lambda_: float = 0.5) -> None:
        if not 0.0 <= lambda_ <= 1.0:
            raise ConfigurationError(f"lambda_ must be between 0 and 1, got {lambda_}")
        self.embedder = embedder
        self.lambda_ = lambda_

    def rerank(self, query: str, hits: Sequence[ScoredChunk], k: int) -> list[ScoredChunk]:
        """At most ``k`` hits in MMR order; each score is its MMR value when picked.

        The scores never increase down the list.
        """
        if k <= 0 or not hits:
            return []
        query_vec = _unit_rows(np.asarray(self.embedder.embed_query(query), dtype=np.float64))
        chunk_vecs = _unit_rows(
            np.asarray(
                self.embedder.embed_documents([hit.chunk.text for hit in hits]),
                dtype=np.float64,
            )
        )
        relevance = chunk_vecs @ query_vec
        similarity = chunk_vecs @ chunk_vecs.T
        n = len(hits)
        position = np.arange(n)
        redundancy = np.zeros(n)  # max(0, similarity to the closest chunk picked so far)
        available = np.ones(n, dtype=bool)
        picked: list[ScoredChunk] = []
        for _ in range(min(k, n)):
            mmr = self.lambda_ * relevance - (1.0 - self.lambda_) * redundancy
            mmr = np.where(available, mmr, -np.inf)
            # np.lexsort sorts by the last key first: MMR, then relevance, then position.
            best = int(np.lexsort((position, -relevance, -mmr))[0])
            picked.append(ScoredChunk(hits[best].chunk, float(mmr[best])))
            available[best] = False
            redundancy = np.maximum(redundancy, similarity[best])
        logger.debug("mmr rerank %r: %d hits -> %d", query, n, len(picked))
        return picked
