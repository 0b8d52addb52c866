"""A FAISS index (exact, or HNSW above a size) backed by SQLite, saved without pickle."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ragkit.protocols import Filters
from ragkit.stores._faiss_db import (
    chunk_json,
    delete_rows,
    encode_rows,
    exact_order,
    lookup,
    scored_rows,
    select_matching,
    write_rows,
)
from ragkit.stores._faiss_index import IndexKind, IndexOptions, auto_ef_search
from ragkit.stores._faiss_state import INDEX_FILE as INDEX_FILE  # noqa: PLC0414 (re-export)
from ragkit.stores._faiss_state import FaissState
from ragkit.stores.codec import (
    as_matrix,
    as_query,
    check_dimension,
    chunk_from_json,
    last_wins,
    top_k_expanding,
)
from ragkit.stores.filters import parse_filters
from ragkit.types import Chunk, ScoredChunk

__all__ = ["FaissStore"]

logger = logging.getLogger(__name__)


class FaissStore(FaissState):
    """FAISS search, exact or HNSW by size; chunks, vectors and filters in SQLite.

    SQLite (``chunks.sqlite``) is the source of truth: it holds every chunk, its
    filterable fields and its float32 vector. ``index.faiss`` is a cache of the FAISS
    index, written by :meth:`save` and :meth:`close`; when it is missing or older than
    the database (a crash before ``close()``), it is rebuilt on open. Filters run in SQL
    first, and FAISS then searches only the matching vectors.

    Up to ``approximate_above`` chunks the index is exact (``IndexFlatIP``); above, it is
    rebuilt as HNSW with float16 storage (``IndexHNSWSQ``), and hits are rescored with
    the float32 vectors, so scores stay exact cosine similarities while the ranking is
    approximate (recall@10 >= 0.98 at the defaults; see ``docs/benchmarks/scale.md``).
    A filter that keeps at most ``exact_filter_below`` chunks is always searched
    exactly. Deleted and replaced chunks are tombstoned in HNSW and skipped by every
    search; the index is rebuilt when they pass a fifth of it.

    Example:
        >>> with FaissStore(path="kb/faiss") as store:  # doctest: +SKIP
        ...     store.upsert(chunks, embedder.embed_documents([c.text for c in chunks]))
        ...     hits = store.search(embedder.embed_query("timeouts"), k=4)

    Args:
        path: folder for ``chunks.sqlite`` and ``index.faiss``; in memory when None.
        dimension: vector length; fixed by the first upsert when not given.
        index: ``"auto"`` (by size), ``"flat"`` (always exact) or ``"hnsw"`` (always
            approximate).
        approximate_above: with ``index="auto"``, chunks above which HNSW is used.
        hnsw_m: HNSW links per vector; applies when the index is (re)built.
        ef_construction: HNSW build-time candidate list; applies when it is (re)built.
        ef_search: HNSW search-time candidate list (recall against speed); None (the
            default) scales it with the store: 128 up to 128,000 chunks, then the next
            power of two above chunks / 1000 (1,024 at a million). The attribute of
            the same name can be changed at any time.
        exact_filter_below: filtered searches matching at most this many chunks score
            them all exactly, however large the store.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        dimension: int | None = None,
        *,
        index: IndexKind = "auto",
        approximate_above: int = 50_000,
        hnsw_m: int = 32,
        ef_construction: int = 40,
        ef_search: int | None = None,
        exact_filter_below: int = 20_000,
    ) -> None:
        check_dimension(dimension)
        super().__init__(
            path,
            dimension,
            IndexOptions(
                kind=index,
                approximate_above=approximate_above,
                m=hnsw_m,
                ef_construction=ef_construction,
                ef_search=ef_search,
            ),
        )
        self.ef_search = ef_search
        self.exact_filter_below = exact_filter_below

    @property
    def dimension(self) -> int | None:
        """Vector length, or None while the store is empty and none was given."""
        with self._lock:
            self._open()
            return self._dimension

    @property
    def index_kind(self) -> str | None:
        """``"flat"`` (exact) or ``"hnsw"`` (approximate); None while the store is empty."""
        with self._lock:
            self._open()
            return None if self._dimension is None else self._ensure_index().kind

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        """Insert or replace chunks by id; when an id repeats in ``chunks``, the last wins.

        Raises:
            ConfigurationError: lengths or dimensions disagree, a row is NaN or zero, or
                a metadata value cannot be stored. Nothing is written then.
        """
        if not chunks and np.size(embeddings) == 0:
            return
        with self._lock:
            db = self._open()
            rows = as_matrix(embeddings, chunks, self._dimension)
            kept = last_wins(chunks)
            keep = [chunks[i] for i in kept]
            vectors = rows[kept]
            old = lookup(db, [c.id for c in keep])
            # Every write gets new row ids, so HNSW can tombstone the old ones.
            first_id = self._get_meta("next_id", 1)
            int_ids = list(range(first_id, first_id + len(keep)))
            records, fields = encode_rows(int_ids, keep, vectors)  # raises before writing
            first = self._dimension is None
            self._dimension = rows.shape[1]
            index = self._ensure_index()  # before the commit, which it must not see twice
            try:
                with self._transaction():
                    write_rows(db, records, fields, replaced=old)
                    self._set_meta(next_id=first_id + len(keep), dimension=rows.shape[1])
            except BaseException:
                if first:
                    self._dimension = self._index = None
                raise
            index.remove(np.asarray(old, dtype=np.int64))
            index.add(vectors, np.asarray(int_ids, dtype=np.int64))
            self._rebuild_if_due()

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self._lock:
            db = self._open()
            int_ids = lookup(db, ids)
            if not int_ids:
                return
            index = self._ensure_index()
            with self._transaction():
                delete_rows(db, int_ids)
                self._set_meta()
            index.remove(np.asarray(int_ids, dtype=np.int64))
            self._rebuild_if_due()

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The stored chunks with these ids, in the order asked; unknown ids are skipped."""
        with self._lock:
            db = self._open()
            found = chunk_json(db, ids)
        chunks = {chunk_id: chunk_from_json(text) for chunk_id, text in found.items()}
        return [chunks[i] for i in ids if i in chunks]

    def search(
        self, embedding: NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` chunks most similar to ``embedding`` among those matching ``filters``.

        Scores are inner products of unit vectors (cosine similarity), best first;
        equal scores are ordered by id.
        """
        conditions = parse_filters(filters)
        with self._lock:
            db = self._open()
            if k <= 0 or self._dimension is None:
                return []
            query = as_query(embedding, self._dimension)
            index = self._ensure_index()
            allowed, available = None, index.live
            if conditions:
                rows = db.execute(*select_matching("int_id", conditions)).fetchall()
                allowed = np.asarray([i for (i,) in rows], dtype=np.int64)
                available = len(allowed)
            if available == 0:
                return []
            labels = None
            if allowed is not None and available <= self.exact_filter_below:
                labels = exact_order(db, query, allowed) if index.kind == "hnsw" else None

            def fetch(n: int) -> list[tuple[str, float, str]]:
                found = labels[:n] if labels is not None else None
                if found is None:
                    ef = self.ef_search or auto_ef_search(index.live)
                    found = index.search(query[None, :], n, allowed, ef)
                return scored_rows(db, found, query)

            hits = top_k_expanding(fetch, k, available)
        return [ScoredChunk(chunk=chunk_from_json(text), score=s) for _, s, text in hits]

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of every stored chunk that matches ``filters``, sorted."""
        conditions = parse_filters(filters)
        with self._lock:
            db = self._open()
            return sorted(i for (i,) in db.execute(*select_matching("chunk_id", conditions)))

    def count(self) -> int:
        """Number of stored chunks."""
        with self._lock:
            return int(self._open().execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    def __enter__(self) -> FaissStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaissStore(path={self._path}, dimension={self._dimension})"
