"""How ``RAG`` builds its default components for a knowledge-base folder."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import Chunker, Embedder, Retriever, VectorStore

if TYPE_CHECKING:
    from ragkit.retrieval.keyword import KeywordIndex

__all__ = [
    "KEYWORD_FOLDER",
    "RETRIEVALS",
    "STORES",
    "Retrieval",
    "build_retriever",
    "check_retrieval",
    "chunker_settings",
    "open_keyword_index",
    "open_store",
    "sentence_embedder",
    "sync_keyword_index",
]

logger = logging.getLogger(__name__)

STORES = ("chroma", "faiss", "memory")
#: What ``RAG(retrieval=...)`` accepts.
Retrieval = Literal["hybrid", "dense", "keyword"]
RETRIEVALS = ("hybrid", "dense", "keyword")
#: The keyword index's folder inside a knowledge base.
KEYWORD_FOLDER = "keyword"


def open_store(kind: str, folder: Path | None) -> VectorStore:
    """The vector store ``kind`` saved in ``folder`` (in memory without one)."""
    if kind == "chroma":
        from ragkit.stores import ChromaStore

        return ChromaStore(path=folder / "chroma" if folder else None)
    if kind == "faiss":
        from ragkit.stores import FaissStore

        return FaissStore(path=folder / "faiss" if folder else None)
    if kind == "memory":
        from ragkit.stores import MemoryStore

        return MemoryStore(path=folder / "memory" if folder else None)
    raise ConfigurationError(f"unknown store {kind!r}; use one of {', '.join(STORES)} or a store")


def sync_keyword_index(index: KeywordIndex, store: VectorStore, batch: int = 1000) -> int:
    """Make ``index`` hold exactly the store's chunks; returns how many were changed.

    Chunk ids are content hashes, so equal id sets mean equal contents. This repairs a
    knowledge base built before keyword search, or one whose last write was cut short.
    """
    wanted, held = set(store.ids()), set(index.ids())
    missing, extra = sorted(wanted - held), sorted(held - wanted)
    if extra:
        index.delete(extra)
    for i in range(0, len(missing), batch):
        index.upsert(store.get(missing[i : i + batch]))
    if missing or extra:
        logger.info(
            "keyword index re-synced with the store: %d chunks added, %d removed",
            len(missing),
            len(extra),
        )
    return len(missing) + len(extra)


def open_keyword_index(
    folder: Path | None, store: VectorStore, scope: str = "auto"
) -> KeywordIndex:
    """The kb's keyword index, rebuilt from the store when missing, unreadable or stale.

    ``scope`` only changes what BM25 scores (each chunk, each whole document, or whole
    documents when short: ``"auto"``); the saved index is the same for all three.
    """
    from ragkit.retrieval.keyword import KeywordIndex
    from ragkit.retrieval.scope import SCOPES

    if scope not in SCOPES:
        raise ConfigurationError(f"unknown keyword_scope {scope!r}; use one of {', '.join(SCOPES)}")

    path = folder / KEYWORD_FOLDER if folder is not None else None
    try:
        index = KeywordIndex(path, scope=scope)
    except StoreError as exc:
        assert path is not None  # an in-memory index cannot fail to load
        logger.warning("%s; rebuilding the keyword index from the vector store", exc)
        shutil.rmtree(path, ignore_errors=True)
        index = KeywordIndex(path, scope=scope)
    sync_keyword_index(index, store)
    return index


def build_retriever(
    retrieval: str, embedder: Embedder, store: VectorStore, keyword: KeywordIndex | None
) -> Retriever:
    """The retriever for ``retrieval`` (``"hybrid"``, ``"dense"`` or ``"keyword"``)."""
    from ragkit.retrieval import BM25Retriever, DenseRetriever, HybridRetriever

    dense = DenseRetriever(embedder, store)
    if retrieval == "dense":
        return dense
    assert keyword is not None
    if retrieval == "keyword":
        return BM25Retriever(keyword)
    return HybridRetriever(dense, BM25Retriever(keyword))


def check_retrieval(retrieval: str) -> None:
    """Raise :class:`ConfigurationError` unless ``retrieval`` is one of :data:`RETRIEVALS`."""
    if retrieval not in RETRIEVALS:
        raise ConfigurationError(
            f"unknown retrieval {retrieval!r}; use one of {', '.join(RETRIEVALS)}"
        )


def chunker_settings(chunker: Chunker) -> dict[str, Any]:
    """The chunker's public scalar settings, for the manifest."""
    out: dict[str, Any] = {"class": type(chunker).__name__}
    for name, value in getattr(chunker, "__dict__", {}).items():
        if not name.startswith("_") and isinstance(value, (str, int, float, bool, type(None))):
            out[name] = value
    return out


def sentence_embedder(embedder: Embedder) -> Embedder:
    """What RAG's generator and verifier embed sentences with: ``embedder``, remembering
    the last vectors in memory (:class:`~ragkit.embeddings.recent.RecentVectors`), never
    through the kb's cache, which holds chunk texts only."""
    from ragkit.embeddings.recent import RecentVectors

    return RecentVectors(embedder)
