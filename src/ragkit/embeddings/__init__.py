"""Embedders: turn text into unit vectors (see :class:`ragkit.protocols.Embedder`)."""

from ragkit.embeddings.cache import CachedEmbedder
from ragkit.embeddings.sentence_transformers import (
    DEFAULT_MODEL,
    SentenceTransformerEmbedder,
    bundled_minilm_path,
)

__all__ = ["DEFAULT_MODEL", "CachedEmbedder", "SentenceTransformerEmbedder", "bundled_minilm_path"]
