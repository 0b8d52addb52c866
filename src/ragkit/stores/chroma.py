"""A vector store in a Chroma collection (local folder, in memory, or your own client)."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import Filters
from ragkit.stores._chroma_collection import (
    Found,
    Hit,
    IncompleteError,
    errors,
    fetch,
    make_client,
    matching,
    nearest,
    open_collection,
)
from ragkit.stores.codec import (
    as_matrix,
    as_query,
    check_dimension,
    encode_metadata,
    last_wins,
    rank,
    top_k_expanding,
)
from ragkit.stores.filters import chroma_where, parse_filters
from ragkit.types import Chunk, ScoredChunk

__all__ = ["ChromaStore"]

logger = logging.getLogger(__name__)


class ChromaStore:
    """Chunks in a Chroma collection with cosine distance; score = 1 - distance.

    Chroma never embeds anything here: the collection has no embedding function and
    every vector is passed in. Telemetry is off for the clients this class creates.
    Writes are sent in batches below Chroma's maximum batch size; a batch that
    fails leaves the earlier batches written.

    In-memory Chroma clients of one process share their data (a Chroma limitation), so
    an in-memory ``ChromaStore()`` without a collection name gets a unique one: two
    such stores never see each other's chunks.

    Example:
        >>> store = ChromaStore(path="kb/chroma")  # doctest: +SKIP
        >>> store.upsert(chunks, embedder.embed_documents([c.text for c in chunks]))
        >>> store.search(embedder.embed_query("timeouts"), k=4, filters={"lang": "en"})

    Args:
        path: folder of a persistent Chroma database; in memory when None.
        collection: collection name (3-512 characters of ``[a-zA-Z0-9._-]``); default
            ``"ragkit"``, or a unique name for an in-memory store.
        client: a Chroma client of your own (e.g. ``chromadb.HttpClient``); it is not
            closed by :meth:`close`. Give ``path`` or ``client``, not both.
        dimension: vector length; fixed by the first upsert when not given.
        hnsw: HNSW settings for a new collection, e.g. ``{"ef_search": 200}`` for
            better recall at some speed (Chroma's search is approximate on large
            collections). Ignored when the collection exists.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        collection: str | None = None,
        client: Any = None,
        *,
        dimension: int | None = None,
        hnsw: Mapping[str, Any] | None = None,
    ) -> None:
        if path is not None and client is not None:
            raise ConfigurationError("Give ChromaStore a path or a client, not both.")
        if hnsw is not None and "space" in hnsw:
            raise ConfigurationError("ChromaStore always uses the cosine space; drop 'space'.")
        self._hnsw = {**(hnsw or {}), "space": "cosine"}
        check_dimension(dimension)
        self._path = Path(path) if path is not None else None
        if collection is None:
            in_memory = path is None and client is None
            collection = f"ragkit-{uuid.uuid4().hex[:16]}" if in_memory else "ragkit"
        self._name = collection
        self._client = client
        self._owns_client = client is None
        self._dimension = dimension
        self._collection: Any = None
        self._batch = 0
        self._closed = False
        self._lock = threading.RLock()

    @property
    def client(self) -> Any:
        """The Chroma client, for Chroma features ragkit does not wrap."""
        with self._lock:
            self._open()
            return self._client

    @property
    def dimension(self) -> int | None:
        """Vector length, or None while the collection is empty and none was given."""
        with self._lock:
            if not self._closed:
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
            collection = self._open()
            rows = as_matrix(embeddings, chunks, self._dimension)
            keep = last_wins(chunks)
            ids = [chunks[i].id for i in keep]
            metadatas = [encode_metadata(chunks[i]) for i in keep]
            vectors = rows[keep]
            with errors("write to"):
                for s in range(0, len(ids), self._batch):
                    collection.upsert(
                        ids=ids[s : s + self._batch],
                        embeddings=vectors[s : s + self._batch],
                        metadatas=metadatas[s : s + self._batch],
                    )
            self._dimension = rows.shape[1]

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        unique = list(dict.fromkeys(ids))
        with self._lock:
            collection = self._open()
            with errors("delete from"):
                for s in range(0, len(unique), self._batch):
                    collection.delete(ids=unique[s : s + self._batch])

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The stored chunks with these ids, in the order asked; unknown ids are skipped."""
        found = self._fetch(list(dict.fromkeys(ids)), embeddings=False)
        return [found[i][0] for i in ids if i in found]

    def search(
        self, embedding: NDArray[np.float32], k: int, filters: Filters | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` chunks most similar to ``embedding`` among those matching ``filters``.

        Filtering happens inside Chroma, before the top-k cut. When Chroma's HNSW
        search returns fewer hits than there are matches (it can, for selective
        filters), the matches are scored exactly instead.
        """
        where, satisfiable = chroma_where(parse_filters(filters))
        with self._lock:
            collection = self._open()
            with errors("search"):
                total = collection.count()
            if k <= 0 or total == 0 or not satisfiable or self._dimension is None:
                return []
            query = as_query(embedding, self._dimension)

            def fetch(n: int) -> list[Hit]:
                hits = nearest(collection, query, n, where)
                if len(hits) < n and len(hits) < min(n, len(self._matching(where))):
                    raise IncompleteError
                return hits

            try:
                hits = top_k_expanding(fetch, k, total)
            except IncompleteError:
                logger.debug("Chroma returned too few hits for %s; scoring exactly", where)
                return self._exact(query, self._matching(where), k)
            return [ScoredChunk(chunk=chunk, score=score) for _, score, chunk in hits]

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of every stored chunk that matches ``filters``, sorted."""
        where, satisfiable = chroma_where(parse_filters(filters))
        with self._lock:
            return sorted(self._matching(where)) if satisfiable else []

    def count(self) -> int:
        """Number of stored chunks."""
        with self._lock:
            collection = self._open()
            with errors("count"):
                return int(collection.count())

    def close(self) -> None:
        """Release the client (unless it was passed in); the store cannot be used after."""
        with self._lock:
            if self._owns_client and self._client is not None:
                self._client.close()
            self._client = self._collection = None
            self._closed = True

    def __enter__(self) -> ChromaStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChromaStore(path={self._path}, collection={self._name!r})"

    def _open(self) -> Any:
        if self._closed:
            raise StoreError(f"{self!r} is closed; open a new ChromaStore.")
        if self._collection is not None:
            return self._collection
        if self._client is None:
            self._client = make_client(self._path)
        collection, self._batch, self._dimension = open_collection(
            self._client, self._name, self._hnsw, self._dimension
        )
        self._collection = collection
        return collection

    def _matching(self, where: dict[str, Any] | None) -> list[str]:
        return matching(self._open(), where, self._batch)

    def _fetch(self, ids: list[str], *, embeddings: bool) -> Found:
        with self._lock:
            return fetch(self._open(), ids, self._batch, embeddings=embeddings)

    def _exact(self, query: NDArray[np.float32], ids: list[str], k: int) -> list[ScoredChunk]:
        found = self._fetch(ids, embeddings=True)
        ids = list(found)
        if not ids:
            return []
        vectors = np.asarray([found[i][1] for i in ids], dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        scores = np.einsum("ij,j->i", vectors, query)
        return [
            ScoredChunk(chunk=found[ids[j]][0], score=float(scores[j]))
            for j in rank(ids, scores, k)
        ]
