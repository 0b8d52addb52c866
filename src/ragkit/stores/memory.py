"""An exact vector store in a numpy matrix, optionally saved to a folder."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import Filters
from ragkit.stores.codec import (
    as_matrix,
    as_query,
    check_dimension,
    chunk_from_dict,
    chunk_to_dict,
    flat_fields,
    last_wins,
    rank,
    write_atomically,
)
from ragkit.stores.filters import matches, parse_filters
from ragkit.types import Chunk, Scalar, ScoredChunk

__all__ = ["MemoryStore"]

logger = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
#: New vectors during a save, until the header that names them is written.
NEXT_VECTORS_FILE = "vectors.next.npy"
CHUNKS_FILE = "chunks.json"
_FORMAT = 1


class MemoryStore:
    """Exact search over a numpy matrix; the default store for tests and small corpora.

    Search scores every chunk that matches the filters and keeps the best ``k``, so
    results are exact. With ``path``, every write is saved to ``path/vectors.npy`` and
    ``path/chunks.json`` (each replaced atomically) and the folder is loaded on open.

    Example:
        >>> store = MemoryStore()
        >>> store.upsert([chunk], embedder.embed_documents([chunk.text]))  # doctest: +SKIP
        >>> store.search(embedder.embed_query("timeouts"), k=3)  # doctest: +SKIP

    Args:
        dimension: vector length; fixed by the first upsert when not given.
        path: folder to save to and load from; in memory only when None.
    """

    def __init__(self, dimension: int | None = None, path: str | os.PathLike[str] | None = None):
        check_dimension(dimension)
        self._lock = threading.RLock()
        self._dimension = dimension
        self._path = Path(path) if path is not None else None
        self._ids: list[str] = []
        self._chunks: list[Chunk] = []
        self._fields: list[dict[str, Scalar]] = []
        self._position: dict[str, int] = {}
        self._vectors: NDArray[np.float32] = np.zeros((0, dimension or 0), dtype=np.float32)
        if self._path is not None:
            if self._path.exists() and not self._path.is_dir():
                raise ConfigurationError(f"MemoryStore path {self._path} is a file, not a folder.")
            if (self._path / CHUNKS_FILE).exists() or (self._path / VECTORS_FILE).exists():
                self._load(dimension)

    @property
    def dimension(self) -> int | None:
        """Vector length, or None while the store is empty and none was given."""
        return self._dimension

    @property
    def path(self) -> Path | None:
        """The folder the store is saved to, if any."""
        return self._path

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        """Insert or replace chunks by id; when an id repeats in ``chunks``, the last wins.

        Raises:
            ConfigurationError: lengths or dimensions disagree, a row is NaN or zero, or
                a metadata value cannot be stored. Nothing is written then.
        """
        if not chunks and np.size(embeddings) == 0:
            return
        with self._lock:
            rows = as_matrix(embeddings, chunks, self._dimension)
            for chunk in chunks:
                chunk_to_dict(chunk)  # fail now on metadata that cannot be saved
            if self._dimension is None:
                self._dimension = rows.shape[1]
                self._vectors = np.zeros((0, self._dimension), dtype=np.float32)
            vectors = self._vectors.copy()
            fresh: list[int] = []
            for i in last_wins(chunks):
                chunk = chunks[i]
                at = self._position.get(chunk.id)
                if at is None:
                    fresh.append(i)
                    continue
                self._chunks[at] = chunk
                self._fields[at] = flat_fields(chunk)
                vectors[at] = rows[i]
            for i in fresh:
                self._position[chunks[i].id] = len(self._ids)
                self._ids.append(chunks[i].id)
                self._chunks.append(chunks[i])
                self._fields.append(flat_fields(chunks[i]))
            self._vectors = np.concatenate([vectors, rows[fresh]]) if fresh else vectors
            self._autosave()

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self._lock:
            gone = {self._position[i] for i in ids if i in self._position}
            if not gone:
                return
            keep = [p for p in range(len(self._ids)) if p not in gone]
            self._ids = [self._ids[p] for p in keep]
            self._chunks = [self._chunks[p] for p in keep]
            self._fields = [self._fields[p] for p in keep]
            self._vectors = self._vectors[keep]
            self._position = {chunk_id: p for p, chunk_id in enumerate(self._ids)}
            self._autosave()

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The stored chunks with these ids, in the order asked; unknown ids are skipped."""
        with self._lock:
            return [self._chunks[self._position[i]] for i in ids if i in self._position]

    def search(
        self, embedding: NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` chunks most similar to ``embedding`` among those matching ``filters``.

        Scores are cosine similarities, best first; equal scores are ordered by id.
        """
        conditions = parse_filters(filters)
        with self._lock:
            if k <= 0 or not self._ids or self._dimension is None:
                return []
            query = as_query(embedding, self._dimension)
            if conditions:
                where = [p for p, f in enumerate(self._fields) if matches(conditions, f)]
                positions = np.asarray(where, dtype=np.intp)
                vectors = self._vectors[positions]
                ids: Sequence[str] = [self._ids[p] for p in where]
            else:
                positions = np.arange(len(self._ids))
                vectors, ids = self._vectors, self._ids
            # einsum scores every row with the same summation order, unlike BLAS, so
            # identical vectors get identical scores and ties fall back to id order.
            scores = np.einsum("ij,j->i", vectors, query)
            best = rank(ids, scores, k)
            return [
                ScoredChunk(chunk=self._chunks[int(positions[j])], score=float(scores[j]))
                for j in best
            ]

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of every stored chunk that matches ``filters``, sorted."""
        conditions = parse_filters(filters)
        with self._lock:
            return sorted(
                chunk_id
                for chunk_id, f in zip(self._ids, self._fields, strict=True)
                if matches(conditions, f)
            )

    def count(self) -> int:
        """Number of stored chunks."""
        with self._lock:
            return len(self._ids)

    def save(self) -> None:
        """Write the store to its folder (done after every write already).

        Raises:
            ConfigurationError: the store has no ``path``.
            StoreError: the files could not be written.
        """
        if self._path is None:
            raise ConfigurationError("This MemoryStore has no path; pass path= to save it.")
        with self._lock:
            vectors = np.ascontiguousarray(self._vectors)
            header = {
                "format": _FORMAT,
                "dimension": self._dimension,
                "count": len(self._ids),
                "vectors_sha256": hashlib.sha256(vectors.tobytes()).hexdigest(),
                "chunks": [chunk_to_dict(c) for c in self._chunks],
            }
            buffer = io.BytesIO()
            np.save(buffer, vectors, allow_pickle=False)
            try:
                self._path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"Could not create {self._path}: {exc}") from exc
            # Three steps, so that a crash at any point leaves a pair that belongs
            # together: the new vectors under a second name, then the header that
            # names their hash (the commit), then the rename. _load takes the second
            # name when a crash came between the last two.
            write_atomically(self._path / NEXT_VECTORS_FILE, buffer.getvalue())
            write_atomically(self._path / CHUNKS_FILE, json.dumps(header).encode("ascii"))
            try:
                os.replace(self._path / NEXT_VECTORS_FILE, self._path / VECTORS_FILE)
            except OSError as exc:
                raise StoreError(f"Could not write {self._path / VECTORS_FILE}: {exc}") from exc
            logger.debug("Saved %d chunks to %s", len(self._ids), self._path)

    def close(self) -> None:
        """Nothing to release: every write is already saved. Present for symmetry."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MemoryStore(dimension={self._dimension}, path={self._path}, count={self.count()})"

    def _autosave(self) -> None:
        if self._path is not None:
            self.save()

    def _load(self, dimension: int | None) -> None:
        assert self._path is not None
        try:
            header = json.loads((self._path / CHUNKS_FILE).read_text(encoding="ascii"))
            vectors = np.load(self._path / VECTORS_FILE, allow_pickle=False)
            if not _belong(header, vectors) and (self._path / NEXT_VECTORS_FILE).exists():
                # A save stopped between its header and its rename (see save).
                vectors = np.load(self._path / NEXT_VECTORS_FILE, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"Could not load the store in {self._path} ({exc}). It needs both "
                f"{VECTORS_FILE} and {CHUNKS_FILE}; delete the folder to start over."
            ) from exc
        stored_dimension = header.get("dimension")
        if not _belong(header, vectors):
            raise StoreError(
                f"{self._path / VECTORS_FILE} and {self._path / CHUNKS_FILE} do not belong "
                "together (was a save interrupted?). Delete the folder and index again."
            )
        if dimension is not None and stored_dimension not in (None, dimension):
            raise ConfigurationError(
                f"The store in {self._path} holds vectors of dimension {stored_dimension}, "
                f"but dimension={dimension} was given."
            )
        self._chunks = [chunk_from_dict(d) for d in header["chunks"]]
        self._ids = [c.id for c in self._chunks]
        self._fields = [flat_fields(c) for c in self._chunks]
        self._position = {chunk_id: p for p, chunk_id in enumerate(self._ids)}
        self._dimension = stored_dimension
        self._vectors = vectors.reshape(len(self._ids), stored_dimension or 0)
        logger.debug("Loaded %d chunks from %s", len(self._ids), self._path)


def _belong(header: dict[str, Any], vectors: NDArray[Any]) -> bool:
    """Whether ``vectors`` is the matrix that ``header`` (chunks.json) describes."""
    return bool(
        header.get("format") == _FORMAT
        and vectors.dtype == np.float32
        and vectors.ndim == 2
        and vectors.shape[0] == header.get("count") == len(header.get("chunks", ()))
        and (not vectors.shape[0] or vectors.shape[1] == header.get("dimension"))
        and hashlib.sha256(np.ascontiguousarray(vectors).tobytes()).hexdigest()
        == header.get("vectors_sha256")
    )
