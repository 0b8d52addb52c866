"""How ``RAG`` builds its default components (the backend builds the kb's own parts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ragkit.errors import ConfigurationError
from ragkit.protocols import Chunker, Embedder, Retriever, VectorStore

if TYPE_CHECKING:
    from ragkit.retrieval.keyword import KeywordIndex

__all__ = [
    "RETRIEVALS",
    "Retrieval",
    "build_retriever",
    "check_retrieval",
    "chunker_settings",
    "sentence_embedder",
]

#: What ``RAG(retrieval=...)`` accepts.
Retrieval = Literal["hybrid", "dense", "keyword"]
RETRIEVALS = ("hybrid", "dense", "keyword")


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
