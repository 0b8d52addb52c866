"""Any LangChain ``VectorStore`` as a ragkit store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit._deps import require
from ragkit.errors import StoreError
from ragkit.protocols import Filters
from ragkit.stores._vectors import as_matrix, as_query, top_k_expanding
from ragkit.stores.codec import (
    chunk_to_dict,
    decode_metadata,
    encode_metadata,
    flat_fields,
    last_wins,
)
from ragkit.stores.filters import matches, parse_filters
from ragkit.types import Chunk, Scalar, ScoredChunk

__all__ = ["LangChainVectorStore"]


class _Staged:
    """Vectors handed to the LangChain store through its ``Embeddings``: ragkit embeds,
    the store only stores. Set just before each call, consumed in order."""

    def __init__(self) -> None:
        self.rows: list[list[float]] = []
        self.query: list[float] | None = None

    def take(self, count: int) -> list[list[float]]:
        if count > len(self.rows):
            raise StoreError(
                "the LangChain store asked to embed texts ragkit did not hand it; "
                "LangChainVectorStore gives it vectors only for the chunks it upserts"
            )
        taken, self.rows = self.rows[:count], self.rows[count:]
        return taken


def _embeddings_for(staged: _Staged) -> Any:
    base = require(
        "langchain_core.embeddings", extra="langchain", purpose="LangChainVectorStore",
        package="langchain-core",
    )  # fmt: skip

    class StagedEmbeddings(base.Embeddings):  # type: ignore[misc,name-defined]
        """Returns the vectors ragkit computed, instead of computing any."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return staged.take(len(texts))

        def embed_query(self, text: str) -> list[float]:
            if staged.query is None:
                raise StoreError("LangChainVectorStore searches by vector only")
            return staged.query

    return StagedEmbeddings()


class LangChainVectorStore:
    """Use a LangChain ``VectorStore`` (any engine LangChain integrates) as a ragkit store.

    ragkit computes the vectors; the LangChain store is built by ``factory`` around an
    ``Embeddings`` object that hands it those vectors, so it never embeds anything
    itself. Each chunk is stored as a LangChain document whose metadata is the chunk's
    filterable fields plus its exact JSON, so ``get`` and ``search`` return the chunk
    as it was written, offsets and pages included.

    Filters use ragkit's filter language on every engine: the store is asked for more
    candidates until ``k`` of them match (all of them at worst), so results are exact.
    Scores are the LangChain store's own: cosine similarity for ``InMemoryVectorStore``;
    for a store that returns distances, pass ``score=`` to turn one into a similarity.

    ``ids`` and ``count`` come from what this object wrote: LangChain has no API to list
    a store's contents, so a store opened on existing data is known only once written
    again through this class (``RAG`` rebuilds nothing from it). Use it for in-process
    stores, or re-index on start.

    Example:
        >>> from langchain_core.vectorstores import InMemoryVectorStore  # doctest: +SKIP
        >>> store = LangChainVectorStore(InMemoryVectorStore)  # doctest: +SKIP
        >>> rag = RAG(None, store=store)  # doctest: +SKIP

    Args:
        factory: called once with an ``Embeddings`` object, returns the LangChain store
            (a class such as ``InMemoryVectorStore`` works as is).
        score: turns the LangChain store's score into a similarity (higher is better).
    """

    def __init__(
        self,
        factory: Callable[[Any], Any],
        *,
        score: Callable[[float], float] | None = None,
    ) -> None:
        self._staged = _Staged()
        self.store = factory(_embeddings_for(self._staged))
        self._score = score
        self._lock = threading.RLock()
        self._fields: dict[str, dict[str, Scalar]] = {}
        self._dimension: int | None = None

    @property
    def dimension(self) -> int | None:
        """Vector length, or None before the first write."""
        return self._dimension

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        """Insert or replace chunks by id (the last of a repeated id wins).

        Raises:
            ConfigurationError: lengths or dimensions disagree, a row is NaN or zero, or
                a metadata value cannot be stored. Nothing is written then.
        """
        if not chunks and np.size(embeddings) == 0:
            return
        with self._lock:
            rows = as_matrix(embeddings, chunks, self._dimension)
            for chunk in chunks:
                chunk_to_dict(chunk)  # fail before writing on metadata that cannot be kept
            keep = last_wins(chunks)
            batch = [chunks[i] for i in keep]
            replaced = [c.id for c in batch if c.id in self._fields]
            if replaced:
                self.store.delete(ids=replaced)
            self._staged.rows = rows[keep].tolist()
            try:
                self.store.add_texts(
                    [c.text for c in batch],
                    metadatas=[encode_metadata(c) for c in batch],
                    ids=[c.id for c in batch],
                )
            finally:
                self._staged.rows = []
            self._dimension = rows.shape[1]
            for chunk in batch:
                self._fields[chunk.id] = flat_fields(chunk)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self._lock:
            known = [i for i in dict.fromkeys(ids) if i in self._fields]
            if known:
                self.store.delete(ids=known)
                for chunk_id in known:
                    del self._fields[chunk_id]

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The stored chunks with these ids, in the order asked; unknown ids are skipped."""
        wanted = [i for i in ids if i in self._fields]
        if not wanted:
            return []
        found = {}
        for document in self.store.get_by_ids(list(dict.fromkeys(wanted))):
            chunk = decode_metadata(document.metadata)
            found[chunk.id] = chunk
        return [found[i] for i in wanted if i in found]

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of the chunks written through this object that match ``filters``."""
        conditions = parse_filters(filters)
        with self._lock:
            return [i for i, fields in self._fields.items() if matches(conditions, fields)]

    def count(self) -> int:
        """Chunks written through this object."""
        return len(self._fields)

    def search(
        self, embedding: NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` best chunks that match ``filters``; equal scores in order of id."""
        conditions = parse_filters(filters)
        with self._lock:
            if self._dimension is None or k <= 0:
                if self._dimension is None and np.size(embedding):
                    as_query(embedding, np.size(embedding))  # still refuse NaN and zeros
                return []
            query = as_query(embedding, self._dimension).tolist()
            total = len(self._fields)
            eligible = total
            if conditions:
                eligible = sum(matches(conditions, f) for f in self._fields.values())

            def fetch(n: int) -> list[tuple[str, float, Chunk]]:
                asked = n
                while True:
                    hits = self._nearest(query, asked)
                    kept = [h for h in hits if matches(conditions, self._fields[h[0]])]
                    if len(kept) >= n or asked >= total:
                        return kept[:n] if len(kept) > n else kept
                    asked = min(total, asked * 4)

            hits = top_k_expanding(fetch, k, eligible)
        return [ScoredChunk(chunk, score) for _, score, chunk in hits]

    def _nearest(self, query: list[float], n: int) -> list[tuple[str, float, Chunk]]:
        """The store's ``n`` nearest chunks to ``query``, with ragkit scores."""
        search = getattr(self.store, "similarity_search_with_score_by_vector", None)
        if callable(search):
            pairs = search(query, k=n)
        else:  # the generic API searches by text: hand it the vector as the query's
            self._staged.query = query
            try:
                pairs = self.store.similarity_search_with_score("", k=n)
            finally:
                self._staged.query = None
        out = []
        for document, raw in pairs:
            chunk = decode_metadata(document.metadata)
            if chunk.id not in self._fields:
                continue  # written by someone else: not ragkit's
            score = self._score(float(raw)) if self._score else float(raw)
            out.append((chunk.id, score, chunk))
        return out
