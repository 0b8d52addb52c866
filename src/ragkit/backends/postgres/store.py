"""PostgresStore: chunks and their vectors in PostgreSQL, searched with pgvector's HNSW."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from ragkit.backends.postgres._db import Database
from ragkit.backends.postgres._fields import where
from ragkit.backends.postgres._write import Prepared, Terms, delete_chunks, insert_chunks
from ragkit.protocols import Filters
from ragkit.stores.codec import as_matrix, as_query, chunk_from_json, last_wins
from ragkit.stores.filters import parse_filters
from ragkit.types import Chunk, ScoredChunk

__all__ = ["PostgresStore"]

logger = logging.getLogger(__name__)

#: pgvector's largest ``hnsw.ef_search``; an index scan returns at most this many rows.
_MAX_EF_SEARCH = 1000


class PostgresStore:
    """A :class:`~ragkit.protocols.VectorStore` over a kb's ``chunks`` table.

    Scores are cosine similarities (``1 -`` pgvector's cosine distance), searched with
    the HNSW index; filters are SQL over the chunk's fields (JSONB), applied inside the
    search. When the index returns fewer rows than asked (a selective filter, rows
    deleted since the graph was built), the search is run again exactly, without the
    index, so fewer than ``k`` hits always means fewer than ``k`` chunks match. Every
    write also keeps the keyword terms in step, in the same transaction.

    Made by :class:`~ragkit.backends.postgres.PostgresBackend`, which owns the pool::

        backend = PostgresBackend(parse_location("postgresql://localhost/db?kb=docs"))
        backend.store.search(vector, k=5, filters={"source": "guide.md"})
    """

    def __init__(self, db: Database, terms: Terms) -> None:
        self._db = db
        self._terms = terms
        self._schema = db.schema

    @property
    def dimension(self) -> int | None:
        """The length of the stored vectors (None before the first write)."""
        with self._db.read("reading the vector length") as cur:
            return self._db.dimension(cur)

    def prepare(self, chunks: Sequence[Chunk], embeddings: Any) -> Prepared:
        """Check and encode a write (last of repeated ids wins) before any transaction."""
        vectors = as_matrix(embeddings, chunks, None)
        keep = last_wins(chunks)
        if len(keep) < len(chunks):
            chunks, vectors = [chunks[i] for i in keep], vectors[keep]
        return Prepared.of(chunks, vectors, self._terms)

    def write(self, cur: psycopg.Cursor[Any], prepared: Prepared) -> None:
        """Write ``prepared`` chunks in the caller's write transaction."""
        if prepared.chunks:
            self._db.ensure_dimension(cur, int(prepared.vectors.shape[1]))
            insert_chunks(cur, self._schema, prepared)

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        prepared = self.prepare(chunks, embeddings)
        if not prepared.chunks:
            return
        with self._db.write("writing chunks") as cur:
            self.write(cur, prepared)

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._db.write("deleting chunks") as cur:
            delete_chunks(cur, self._schema, ids)

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        if not ids:
            return []
        with self._db.read("reading chunks") as cur:
            cur.execute(
                f"SELECT id, chunk FROM {self._schema}.chunks WHERE id = ANY(%s)",
                (list(dict.fromkeys(ids)),),
            )
            found = {cid: chunk_from_json(text) for cid, text in cur.fetchall()}
        return [found[i] for i in ids if i in found]

    def ids(self, filters: Filters | None = None) -> list[str]:
        clause, params = where(parse_filters(filters))
        with self._db.read("listing chunk ids") as cur:
            cur.execute(
                f"SELECT id FROM {self._schema}.chunks c WHERE {clause} ORDER BY id", params
            )
            return [row[0] for row in cur.fetchall()]

    def count(self) -> int:
        with self._db.read("counting chunks") as cur:
            cur.execute(f"SELECT count(*) FROM {self._schema}.chunks")
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def search(
        self, embedding: NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        clause, params = where(parse_filters(filters))
        if k <= 0:
            return []
        with self._db.read("searching") as cur:
            dimension = self._db.dimension(cur)
            if dimension is None:
                return []
            query = as_query(embedding, dimension)
            hits = self._indexed(cur, query, k, clause, params)
            if hits is None:
                hits = self._exact(cur, query, k, clause, params)
        return [ScoredChunk(chunk_from_json(text), score) for _, text, score in hits]

    def _indexed(
        self,
        cur: psycopg.Cursor[Any],
        query: NDArray[np.float32],
        k: int,
        clause: str,
        params: list[Any],
    ) -> list[tuple[str, str, float]] | None:
        """The top ``k`` through the HNSW index, or None when it returned too few rows.

        One more than ``k`` rows is asked for, and more while the last ties with the
        ``k``-th, so that equal scores at the cut are settled by id, as exactly.
        """
        n = k + 1
        while n <= _MAX_EF_SEARCH:
            ef = min(_MAX_EF_SEARCH, max(self._db.settings.ef_search, n))
            cur.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
            if self._db.iterative_scan:
                cur.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
            cur.execute(
                f"SELECT id, chunk, 1 - (embedding <=> %s) FROM {self._schema}.chunks c "
                f"WHERE {clause} ORDER BY embedding <=> %s LIMIT %s",
                [query, *params, query, n],
            )
            rows: list[tuple[str, str, float]] = cur.fetchall()
            if len(rows) < n:
                logger.debug("HNSW returned %d of %d rows; searching exactly", len(rows), n)
                return None
            rows.sort(key=lambda r: (-r[2], r[0]))
            if rows[-1][2] < rows[k - 1][2]:
                return rows[:k]
            n *= 2
        return None

    def _exact(
        self,
        cur: psycopg.Cursor[Any],
        query: NDArray[np.float32],
        k: int,
        clause: str,
        params: list[Any],
    ) -> list[tuple[str, str, float]]:
        """The top ``k`` by scoring every matching row (an ORDER BY the index cannot serve)."""
        cur.execute(
            f"SELECT id, chunk, 1 - (embedding <=> %s) AS score FROM {self._schema}.chunks c "
            f"WHERE {clause} ORDER BY score DESC, id LIMIT %s",
            [query, *params, k],
        )
        return list(cur.fetchall())

    def __repr__(self) -> str:
        return f"PostgresStore({self._db.location!r})"
