"""Keyword (BM25) and hybrid retrieval inside Milvus, over a :class:`MilvusStore`."""

from __future__ import annotations

import logging

from ragkit.backends.milvus.store import MilvusStore
from ragkit.protocols import Embedder, Filters
from ragkit.types import ScoredChunk

__all__ = ["MilvusHybridRetriever", "MilvusKeywordRetriever"]

logger = logging.getLogger(__name__)


class MilvusKeywordRetriever:
    """Top-k chunks by Milvus's built-in BM25 over the chunk text (sparse search).

    Example:
        >>> retriever = MilvusKeywordRetriever(store)  # doctest: +SKIP
        >>> retriever.retrieve("XJ-9000 firmware", k=3)  # doctest: +SKIP
    """

    def __init__(self, store: MilvusStore) -> None:
        self.store = store

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        hits = self.store.keyword_search(query, k, filters)
        logger.debug("milvus keyword retrieve %r k=%d -> %d hits", query, k, len(hits))
        return hits


class MilvusHybridRetriever:
    """Dense and BM25 search fused by reciprocal rank inside Milvus (``hybrid_search``).

    Scores are RRF scores (about ``2 / 61`` at best), comparable within one query only.

    Example:
        >>> retriever = MilvusHybridRetriever(store, embedder)  # doctest: +SKIP
        >>> retriever.retrieve("How long is the default timeout?", k=4)  # doctest: +SKIP
    """

    def __init__(self, store: MilvusStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        if k <= 0:
            return []
        hits = self.store.hybrid_search(query, self.embedder.embed_query(query), k, filters)
        logger.debug("milvus hybrid retrieve %r k=%d -> %d hits", query, k, len(hits))
        return hits
