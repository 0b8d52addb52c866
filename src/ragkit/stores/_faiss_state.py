"""The state behind :class:`~ragkit.stores.FaissStore`: its SQLite connection, generation
counters and FAISS index, opened on first use, saved by ``save`` and ``close``.

Every committed write bumps the database's generation; ``index.faiss`` is read back
only when it was saved at the current generation, and is rebuilt from the vectors in
SQLite otherwise.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragkit._deps import require
from ragkit.errors import ConfigurationError, StoreError
from ragkit.stores._faiss_db import connect, live_ids, meta
from ragkit.stores._faiss_index import IndexOptions, VectorIndex, build_index, read_index
from ragkit.stores.codec import write_atomically

__all__ = ["INDEX_FILE", "FaissState"]

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"


class FaissState:
    """Opening, index upkeep, metadata, transactions, ``save`` and ``close`` of a
    :class:`~ragkit.stores.FaissStore` (its base class; the store adds the operations).

    Args:
        path: folder for ``chunks.sqlite`` and ``index.faiss``; in memory when None.
        dimension: vector length, or None until the first upsert fixes it.
        options: how the index is built and when it is rebuilt.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        dimension: int | None,
        options: IndexOptions,
    ) -> None:
        self._options = options
        self._path = Path(path) if path is not None else None
        self._dimension = dimension
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._faiss: Any = None
        self._index: VectorIndex | None = None
        self._generation = 0
        self._index_generation = -1
        self._closed = False

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
            write_atomically(target, self._ensure_index().serialize())
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

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self!r} is closed; open a new FaissStore.")
        if self._db is not None:
            return self._db
        self._faiss = require("faiss", extra="faiss", purpose="FaissStore", package="faiss-cpu")
        self._db = db = connect(self._path)
        stored = self._get_meta("dimension", None)
        if stored is not None and self._dimension not in (None, stored):
            raise ConfigurationError(
                f"The store in {self._path} holds vectors of dimension {stored}, "
                f"but dimension={self._dimension} was given."
            )
        self._dimension = stored or self._dimension
        self._generation = self._get_meta("generation", 0)
        self._index_generation = self._get_meta("index_generation", -1)
        return db

    def _ensure_index(self) -> VectorIndex:
        if self._index is None:
            assert self._dimension is not None
            self._index = self._read_index() or self._build_index()
            self._rebuild_if_due()
        return self._index

    def _read_index(self) -> VectorIndex | None:
        assert self._db is not None
        if self._path is None or self._index_generation != self._generation:
            return None
        index = read_index(self._faiss, self._path / INDEX_FILE, live_ids(self._db))
        return index if index is not None and index.dimension == self._dimension else None

    def _build_index(self) -> VectorIndex:
        assert self._db is not None
        assert self._dimension is not None
        self._index_generation = -1  # not on disk yet
        return build_index(self._faiss, self._db, self._dimension, self._options)

    def _rebuild_if_due(self) -> None:
        assert self._index is not None
        reason = self._index.rebuild_reason(self._options)
        if reason is not None:
            logger.info("Rebuilding the FAISS index: %s", reason)
            self._index = self._build_index()

    def _get_meta(self, key: str, default: Any) -> Any:
        assert self._db is not None
        return meta(self._db, key, default)

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
