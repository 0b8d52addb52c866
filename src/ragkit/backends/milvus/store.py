"""A vector store in a Milvus collection: dense (cosine), BM25 and hybrid search."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.backends.milvus import _chunks
from ragkit.backends.milvus._client import STRONG, Connection, batched, pymilvus
from ragkit.backends.milvus._filters import quote, translate
from ragkit.backends.milvus._ranking import Row, rows_of, top_k
from ragkit.backends.urls import MilvusSettings
from ragkit.protocols import Filters
from ragkit.stores.codec import as_matrix, as_query, chunk_from_json, flat_fields, last_wins
from ragkit.stores.filters import matches, parse_filters
from ragkit.types import Chunk, ScoredChunk

__all__ = ["MilvusStore"]

logger = logging.getLogger(__name__)

#: Rows per insert or delete request.
_BATCH = 1000
#: RRF's smoothing constant (as in ragkit's own fusion).
_RRF_K = 60


class MilvusStore:
    """Chunks in a Milvus collection; dense search by cosine similarity (HNSW), keyword
    search by Milvus's built-in BM25, and both fused by RRF on the server.

    Filters are translated to Milvus expressions over JSON fields and applied inside
    the search, before its top-k cut. Every hit is also checked with ragkit's own
    :func:`~ragkit.stores.filters.matches`; where an expression could only select a
    superset (see :mod:`ragkit.backends.milvus._filters`), the search asks for more
    candidates until ``k`` hits match or Milvus has no more. Reads use strong
    consistency, so they see every write made before them. A search returns at most
    16,384 hits (Milvus's limit).

    The collection is created on the first upsert, with the dimension of its vectors.

    Example:
        >>> from ragkit.backends.urls import parse_location
        >>> store = MilvusStore(parse_location("milvus://127.0.0.1:19530?collection=docs"))
        ...  # doctest: +SKIP
        >>> store.upsert(chunks, embedder.embed_documents([c.text for c in chunks]))
        ...  # doctest: +SKIP

    Args:
        settings: the server and the collection's name.
        connection: a connection to share (the backend's); by default the store opens
            its own and closes it in :meth:`close`.
    """

    def __init__(self, settings: MilvusSettings, *, connection: Connection | None = None) -> None:
        self._owns = connection is None
        self._conn = connection if connection is not None else Connection(settings)
        self.name = settings.namespace
        self.location = settings.location
        self._lock = threading.Lock()
        self._dimension: int | None = None

    @property
    def dimension(self) -> int | None:
        """The vectors' length; None while the collection does not exist."""
        with self._lock:
            return self._opened()

    def _opened(self) -> int | None:
        if self._dimension is None and self._conn.has_collection(self.name):
            self._dimension = _chunks.dimension_of(self._conn, self.name)
        return self._dimension

    # -- writes -------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        """Insert or replace chunks by id; checked whole before anything is written."""
        with self._lock:
            dimension = self._opened()
            vectors = as_matrix(embeddings, chunks, dimension)
            if not chunks:
                return
            keep = last_wins(chunks)
            rows = _chunks.rows([chunks[i] for i in keep], vectors[keep])
            if dimension is None:
                _chunks.create(self._conn, self.name, vectors.shape[1])
                self._dimension = vectors.shape[1]
            for part in batched(rows, _BATCH):
                self._conn.call(f"writing {len(part)} chunks", "upsert", self.name, part)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self._lock:
            if not ids or self._opened() is None:
                return
            for part in batched(list(dict.fromkeys(ids)), _BATCH):
                expr = f"id in [{', '.join(quote(i) for i in part)}]"
                self._conn.call(f"deleting {len(part)} chunks", "delete", self.name, filter=expr)

    # -- reads --------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The stored chunks with these ids, in the order asked; unknown ids skipped."""
        with self._lock:
            if not ids or self._opened() is None:
                return []
            found: dict[str, Chunk] = {}
            for part in batched(list(dict.fromkeys(ids)), _BATCH):
                expr = f"id in [{', '.join(quote(i) for i in part)}]"
                for row in self._conn.query_all("reading chunks", self.name, expr, ["chunk"]):
                    found[row["id"]] = chunk_from_json(row["chunk"])
        return [found[i] for i in ids if i in found]

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of every stored chunk that matches ``filters``, sorted."""
        conditions = parse_filters(filters)
        flt = translate(conditions)
        with self._lock:
            if not flt.satisfiable or self._opened() is None:
                return []
            fields = ["id"] if flt.exact else ["chunk"]
            rows = self._conn.query_all("listing chunk ids", self.name, flt.expr, fields)
        if not flt.exact:
            rows = [
                r for r in rows if matches(conditions, flat_fields(chunk_from_json(r["chunk"])))
            ]
        return sorted(r["id"] for r in rows)

    def count(self) -> int:
        """Number of stored chunks."""
        with self._lock:
            if self._opened() is None:
                return 0
            rows = self._conn.call(
                "counting chunks",
                "query",
                self.name,
                filter="",
                output_fields=["count(*)"],
                consistency_level=STRONG,
            )
        return int(rows[0]["count(*)"]) if rows else 0

    # -- search -------------------------------------------------------------------------

    def search(
        self, embedding: NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` chunks most similar to ``embedding`` among those matching ``filters``;
        score = cosine similarity, equal scores in order of id."""
        conditions = parse_filters(filters)
        flt = translate(conditions)
        with self._lock:
            dimension = self._opened()
            if dimension is None:
                return []
            query = as_query(embedding, dimension).tolist()
        if k <= 0 or not flt.satisfiable:
            return []

        def fetch(limit: int) -> list[Row]:
            params = {"metric_type": "COSINE", "params": {"ef": max(limit, 64)}}
            return rows_of(
                self._search(
                    "searching",
                    data=[query],
                    anns_field="vector",
                    search_params=params,
                    limit=limit,
                    filter=flt.expr,
                )
            )

        return top_k(fetch, k, conditions)

    def keyword_search(
        self, text: str, k: int, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` chunks that Milvus's BM25 ranks best for ``text``, matching ``filters``;
        score = the BM25 score (Milvus Lite's BM25 is approximate)."""
        conditions = parse_filters(filters)
        flt = translate(conditions)
        text = _chunks.bm25_text(text)
        if k <= 0 or not flt.satisfiable or not text or self.dimension is None:
            return []

        def fetch(limit: int) -> list[Row]:
            params = {"metric_type": "BM25"}
            return rows_of(
                self._search(
                    "keyword search",
                    data=[text],
                    anns_field="sparse",
                    search_params=params,
                    limit=limit,
                    filter=flt.expr,
                ),
                bm25=True,
            )

        return top_k(fetch, k, conditions)

    def hybrid_search(
        self, text: str, embedding: NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        """Dense and BM25 search of the same candidates, fused by reciprocal rank on the
        server (``hybrid_search`` with RRF, k=60); score = the fused RRF score."""
        conditions = parse_filters(filters)
        flt = translate(conditions)
        dimension = self.dimension
        if k <= 0 or not flt.satisfiable or dimension is None:
            return []
        text = _chunks.bm25_text(text)
        if not text:
            return self.search(embedding, k, filters)
        query = as_query(embedding, dimension).tolist()
        module = pymilvus()

        def fetch(limit: int) -> list[Row]:
            dense = module.AnnSearchRequest(
                data=[query],
                anns_field="vector",
                limit=limit,
                expr=flt.expr,
                param={"metric_type": "COSINE", "params": {"ef": max(limit, 64)}},
            )
            sparse = module.AnnSearchRequest(
                data=[text],
                anns_field="sparse",
                limit=limit,
                expr=flt.expr,
                param={"metric_type": "BM25"},
            )
            result = self._conn.call(
                "hybrid search",
                "hybrid_search",
                self.name,
                [dense, sparse],
                module.RRFRanker(_RRF_K),
                limit=limit,
                output_fields=["chunk"],
                consistency_level=STRONG,
            )
            return rows_of(result)

        return top_k(fetch, k, conditions)

    def _search(self, what: str, **kwargs: Any) -> Any:
        return self._conn.call(
            what,
            "search",
            self.name,
            output_fields=["chunk"],
            consistency_level=STRONG,
            **kwargs,
        )

    def close(self) -> None:
        """Close the connection, if the store opened it."""
        if self._owns:
            self._conn.close()

    def __repr__(self) -> str:
        return f"MilvusStore({self.location!r})"
