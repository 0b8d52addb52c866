"""An exact FAISS index backed by SQLite, saved to a folder without pickle."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit._deps import require
from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import Filters
from ragkit.stores.codec import (
    as_matrix,
    as_query,
    check_dimension,
    chunk_from_json,
    chunk_to_json,
    flat_fields,
    last_wins,
    top_k_expanding,
    write_atomically,
)
from ragkit.stores.filters import kind_of, parse_filters, sql_where
from ragkit.types import Chunk, ScoredChunk

__all__ = ["FaissStore"]

logger = logging.getLogger(__name__)

DB_FILE = "chunks.sqlite"
INDEX_FILE = "index.faiss"
_VECTOR = np.dtype("<f4")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS rows (
    int_id INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    document_id TEXT NOT NULL, json TEXT NOT NULL, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS fields (
    int_id INTEGER NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, value,
    PRIMARY KEY (int_id, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fields_key_value ON fields (key, value);
"""
_IN = "(SELECT value FROM json_each(?))"


class FaissStore:
    """Exact inner-product search with FAISS; chunks, vectors and filters in SQLite.

    SQLite (``chunks.sqlite``) is the source of truth: it holds every chunk, its
    filterable fields and its vector. ``index.faiss`` is a cache of the FAISS index,
    written by :meth:`save` and :meth:`close`; when it is missing or older than the
    database (a crash before ``close()``), it is rebuilt on open. Filters run in SQL
    first, and FAISS then searches only the matching vectors.

    Example:
        >>> with FaissStore(path="kb/faiss") as store:  # doctest: +SKIP
        ...     store.upsert(chunks, embedder.embed_documents([c.text for c in chunks]))
        ...     hits = store.search(embedder.embed_query("timeouts"), k=4)

    Args:
        path: folder for ``chunks.sqlite`` and ``index.faiss``; in memory when None.
        dimension: vector length; fixed by the first upsert when not given.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, dimension: int | None = None
    ) -> None:
        check_dimension(dimension)
        self._path = Path(path) if path is not None else None
        self._dimension = dimension
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._faiss: Any = None
        self._index: Any = None
        self._generation = 0
        self._index_generation = -1
        self._closed = False

    @property
    def dimension(self) -> int | None:
        """Vector length, or None while the store is empty and none was given."""
        with self._lock:
            self._open()
            return self._dimension

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
            encoded = [chunk_to_json(c) for c in keep]
            known = dict(self._lookup([c.id for c in keep]))
            next_id = self._meta("next_id", 1)
            int_ids = []
            for chunk in keep:
                if chunk.id not in known:
                    known[chunk.id], next_id = next_id, next_id + 1
                int_ids.append(known[chunk.id])
            records = [
                (i, c.id, c.source, c.document_id, text, v.astype(_VECTOR).tobytes())
                for i, c, text, v in zip(int_ids, keep, encoded, vectors, strict=True)
            ]
            fields = [
                (i, key, kind_of(value), value)
                for i, c in zip(int_ids, keep, strict=True)
                for key, value in flat_fields(c).items()
            ]
            first = self._dimension is None
            self._dimension = rows.shape[1]
            index = self._ensure_index()  # before the commit, which it must not see twice
            try:
                with self._transaction():
                    db.execute(f"DELETE FROM fields WHERE int_id IN {_IN}", (json.dumps(int_ids),))
                    db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?, ?, ?)", records)
                    db.executemany("INSERT INTO fields VALUES (?, ?, ?, ?)", fields)
                    self._set_meta(next_id=next_id, dimension=rows.shape[1])
            except BaseException:
                if first:
                    self._dimension = self._index = None
                raise
            ids = np.asarray(int_ids, dtype=np.int64)
            index.remove_ids(ids)
            index.add_with_ids(vectors, ids)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self._lock:
            db = self._open()
            int_ids = [i for _, i in self._lookup(ids)]
            if not int_ids:
                return
            index = self._ensure_index()
            with self._transaction():
                for table in ("fields", "rows"):
                    db.execute(f"DELETE FROM {table} WHERE int_id IN {_IN}", (json.dumps(int_ids),))
                self._set_meta()
            index.remove_ids(np.asarray(int_ids, dtype=np.int64))

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The stored chunks with these ids, in the order asked; unknown ids are skipped."""
        with self._lock:
            db = self._open()
            found = dict(
                db.execute(
                    f"SELECT chunk_id, json FROM rows WHERE chunk_id IN {_IN}",
                    (json.dumps(list(dict.fromkeys(ids))),),
                )
            )
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
            query = as_query(embedding, self._dimension)[None, :]
            index = self._ensure_index()
            params, available = None, int(index.ntotal)
            if conditions:
                sql, args = sql_where(conditions)
                allowed = [i for (i,) in db.execute(f"SELECT int_id FROM rows r WHERE {sql}", args)]
                selector = self._faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
                params, available = self._faiss.SearchParameters(sel=selector), len(allowed)
            if available == 0:
                return []

            def fetch(n: int) -> list[tuple[str, float, str]]:
                scores, labels = index.search(query, n, params=params)
                pairs = zip(labels[0], scores[0], strict=True)
                found = {int(i): float(s) for i, s in pairs if i >= 0}
                rows = db.execute(
                    f"SELECT int_id, chunk_id, json FROM rows WHERE int_id IN {_IN}",
                    (json.dumps(list(found)),),
                )
                return [(chunk_id, found[i], text) for i, chunk_id, text in rows]

            hits = top_k_expanding(fetch, k, available)
        return [ScoredChunk(chunk=chunk_from_json(text), score=s) for _, s, text in hits]

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of every stored chunk that matches ``filters``, sorted."""
        sql, args = sql_where(parse_filters(filters))
        with self._lock:
            db = self._open()
            return sorted(
                i for (i,) in db.execute(f"SELECT chunk_id FROM rows r WHERE {sql}", args)
            )

    def count(self) -> int:
        """Number of stored chunks."""
        with self._lock:
            return int(self._open().execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    def save(self) -> None:
        """Write ``index.faiss`` if it is older than the database (no-op in memory)."""
        with self._lock:
            self._open()
            if (
                self._path is None
                or self._dimension is None
                or self._index_generation == self._generation
            ):
                return
            target = self._path / INDEX_FILE
            write_atomically(target, self._faiss.serialize_index(self._ensure_index()).tobytes())
            with self._transaction():
                self._set_meta(index_generation=self._generation, bump=False)
            self._index_generation = self._generation
            logger.debug("Wrote %s at generation %d", target, self._generation)

    def close(self) -> None:
        """Save the index and close the database; the store cannot be used after."""
        with self._lock:
            if self._closed:
                return
            if self._db is not None:
                try:
                    self.save()
                finally:
                    self._db.close()
            self._db = self._index = None
            self._closed = True

    def __enter__(self) -> FaissStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaissStore(path={self._path}, dimension={self._dimension})"

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self!r} is closed; open a new FaissStore.")
        if self._db is not None:
            return self._db
        self._faiss = require("faiss", extra="faiss", purpose="FaissStore", package="faiss-cpu")
        target = ":memory:"
        if self._path is not None:
            if self._path.exists() and not self._path.is_dir():
                raise ConfigurationError(f"FaissStore path {self._path} is a file, not a folder.")
            self._path.mkdir(parents=True, exist_ok=True)
            target = str(self._path / DB_FILE)
        try:
            db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"Could not open {target}: {exc}") from exc
        self._db = db
        stored = self._meta("dimension", None)
        if stored is not None and self._dimension not in (None, stored):
            raise ConfigurationError(
                f"The store in {self._path} holds vectors of dimension {stored}, "
                f"but dimension={self._dimension} was given."
            )
        self._dimension = stored or self._dimension
        self._generation = self._meta("generation", 0)
        self._index_generation = self._meta("index_generation", -1)
        return db

    def _ensure_index(self) -> Any:
        if self._index is None:
            assert self._dimension is not None
            self._index = self._read_index() or self._build_index()
        return self._index

    def _read_index(self) -> Any:
        if self._path is None or self._index_generation != self._generation:
            return None
        try:
            index = self._faiss.read_index(str(self._path / INDEX_FILE))
        except RuntimeError as exc:
            logger.warning("Rebuilding the FAISS index: could not read it (%s)", exc)
            return None
        if index.d != self._dimension or index.ntotal != self.count():
            logger.warning("Rebuilding the FAISS index: it does not match %s", DB_FILE)
            return None
        return index

    def _build_index(self) -> Any:
        assert self._db is not None
        index = self._faiss.IndexIDMap2(self._faiss.IndexFlatIP(self._dimension))
        rows = self._db.execute("SELECT int_id, vector FROM rows ORDER BY int_id").fetchall()
        if rows:
            ids = np.asarray([i for i, _ in rows], dtype=np.int64)
            vectors = np.frombuffer(b"".join(v for _, v in rows), dtype=_VECTOR)
            index.add_with_ids(vectors.reshape(len(rows), -1).astype(np.float32), ids)
            logger.info("Rebuilt the FAISS index of %d vectors from %s", len(rows), DB_FILE)
        self._index_generation = -1  # not on disk yet
        return index

    def _lookup(self, ids: Iterable[str]) -> list[tuple[str, int]]:
        assert self._db is not None
        return self._db.execute(
            f"SELECT chunk_id, int_id FROM rows WHERE chunk_id IN {_IN}", (json.dumps(list(ids)),)
        ).fetchall()

    def _meta(self, key: str, default: Any) -> Any:
        assert self._db is not None
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def _set_meta(self, *, bump: bool = True, **values: int) -> None:
        assert self._db is not None
        if bump:
            self._generation += 1
            values["generation"] = self._generation
        self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` .. ``COMMIT``; on error, roll back (the generation too)."""
        assert self._db is not None
        generation = self._generation
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._generation = generation
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"The FAISS store's database failed: {exc}") from exc
            raise
