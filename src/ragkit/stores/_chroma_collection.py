"""Talking to Chroma for :class:`~ragkit.stores.ChromaStore`: the client made and the
collection opened and checked, ids and chunks read in pages, Chroma's failures reported
as :class:`~ragkit.errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError, RagkitError, StoreError
from ragkit.stores.codec import decode_metadata
from ragkit.types import Chunk

__all__ = [
    "Found",
    "Hit",
    "IncompleteError",
    "errors",
    "fetch",
    "make_client",
    "matching",
    "nearest",
    "open_collection",
]

#: A search hit: (chunk id, score, chunk).
Hit = tuple[str, float, Chunk]

#: Chunks by id, each with its vector when it was asked for.
Found = dict[str, tuple[Chunk, NDArray[np.float32] | None]]


class IncompleteError(Exception):
    """Chroma's approximate search returned fewer hits than there are matches."""


@contextmanager
def errors(action: str) -> Iterator[None]:
    """Report Chroma's failures as :class:`StoreError` (ours pass through)."""
    try:
        yield
    except (RagkitError, IncompleteError):
        raise
    except Exception as exc:
        raise StoreError(f"Chroma could not {action} the collection: {exc}") from exc


def make_client(path: Path | None) -> Any:
    """A Chroma client with telemetry off: in memory, or persistent in ``path``."""
    import chromadb
    from chromadb.config import Settings

    with errors("open"):
        settings = Settings(anonymized_telemetry=False)
        if path is None:
            return chromadb.EphemeralClient(settings=settings)
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(str(path), settings=settings)


def open_collection(
    client: Any, name: str, hnsw: Mapping[str, Any], dimension: int | None
) -> tuple[Any, int, int | None]:
    """(collection, Chroma's maximum batch size, dimension of the stored vectors or else
    ``dimension``) for the collection ``name``, created without an embedding function.

    Raises:
        ConfigurationError: the collection is not in the cosine space, or holds vectors
            of another dimension than ``dimension``.
    """
    with errors("open"):
        collection = client.get_or_create_collection(
            name,
            embedding_function=None,
            configuration={"hnsw": hnsw},
        )
        batch = int(client.get_max_batch_size())
        peek = collection.get(limit=1, include=["embeddings"])["embeddings"]
    configuration = collection.configuration or {}
    space = (configuration.get("hnsw") or configuration.get("spann") or {}).get("space")
    if space not in (None, "cosine"):
        raise ConfigurationError(
            f"Chroma collection {name!r} uses the {space!r} space; ChromaStore "
            "needs 'cosine'. Use another collection name."
        )
    stored = len(peek[0]) if peek is not None and len(peek) else None
    if stored is not None and dimension not in (None, stored):
        raise ConfigurationError(
            f"Chroma collection {name!r} holds vectors of dimension {stored}, "
            f"but dimension={dimension} was given."
        )
    return collection, batch, stored or dimension


def matching(collection: Any, where: dict[str, Any] | None, batch: int) -> list[str]:
    """Ids of every chunk matching ``where``, read ``batch`` at a time."""
    ids: list[str] = []
    with errors("read"):
        while True:
            page = collection.get(where=where, include=[], limit=batch, offset=len(ids))
            ids += page["ids"]
            if len(page["ids"]) < batch:
                return ids


def fetch(collection: Any, ids: list[str], batch: int, *, embeddings: bool) -> Found:
    """The stored chunks (and vectors, when asked) of ``ids``, read ``batch`` at a time."""
    include = ["metadatas", "embeddings"] if embeddings else ["metadatas"]
    found: Found = {}
    for s in range(0, len(ids), batch):
        with errors("read"):
            page = collection.get(ids=ids[s : s + batch], include=include)
        vectors = page["embeddings"] if embeddings else [None] * len(page["ids"])
        for chunk_id, metadata, vector in zip(page["ids"], page["metadatas"], vectors, strict=True):
            found[chunk_id] = (decode_metadata(metadata), vector)
    return found


def nearest(
    collection: Any, query: NDArray[np.float32], n: int, where: dict[str, Any] | None
) -> list[Hit]:
    """Chroma's ``n`` nearest chunks to the unit vector ``query`` among those matching
    ``where``, scored 1 - cosine distance (approximate: it may return fewer)."""
    with errors("search"):
        result = collection.query(
            query_embeddings=query[None, :],
            n_results=n,
            where=where,
            include=["metadatas", "distances"],
        )
    return [
        (chunk_id, 1.0 - float(distance), decode_metadata(metadata))
        for chunk_id, distance, metadata in zip(
            result["ids"][0],
            result["distances"][0],
            result["metadatas"][0],
            strict=True,
        )
    ]
