"""Embedders: turn text into unit vectors (see :class:`ragkit.protocols.Embedder`)."""

from ragkit.embeddings.cache import CachedEmbedder
from ragkit.embeddings.onnx import ONNX_INT8_MODEL_ID, OnnxEmbedder, bundled_minilm_int8_path
from ragkit.embeddings.sentence_transformers import (
    DEFAULT_MODEL,
    SentenceTransformerEmbedder,
    bundled_minilm_path,
)

__all__ = [
    "DEFAULT_MODEL",
    "ONNX_INT8_MODEL_ID",
    "CachedEmbedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "bundled_minilm_int8_path",
    "bundled_minilm_path",
]
