"""Dense retrieval: embed the query, search the vector store."""

from __future__ import annotations

import logging

from ragkit.protocols import Embedder, Filters, VectorStore
from ragkit.types import ScoredChunk

__all__ = ["DenseRetriever"]

logger = logging.getLogger(__name__)


class DenseRetriever:
    """Top-k chunks by cosine similarity between query and chunk embeddings.

    Example:
        >>> from ragkit.stores import MemoryStore
        >>> from ragkit.testing import FakeEmbedder
        >>> retriever = DenseRetriever(FakeEmbedder(), MemoryStore())
        >>> retriever.retrieve("anything", k=3)
        []

    Args:
        embedder: embeds the query; must be the embedder that filled ``store``.
        store: where the chunks and their vectors are.
        min_score: drop hits scoring below this cosine similarity (``None`` keeps all).
    """

    def __init__(
        self, embedder: Embedder, store: VectorStore, *, min_score: float | None = None
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.min_score = min_score

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        if k <= 0:
            return []
        hits = self.store.search(self.embedder.embed_query(query), k, filters)
        if self.min_score is not None:
            hits = [h for h in hits if h.score >= self.min_score]
        logger.debug("dense retrieve %r k=%d -> %d hits", query, k, len(hits))
        return hits
