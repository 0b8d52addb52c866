"""Chunkers: cut documents into chunks with exact offsets (:class:`ragkit.protocols.Chunker`)."""

from ragkit.chunking.recursive import RecursiveChunker
from ragkit.chunking.separators import DEFAULT_SEPARATORS, MARKDOWN_SEPARATORS, Separator

__all__ = ["DEFAULT_SEPARATORS", "MARKDOWN_SEPARATORS", "RecursiveChunker", "Separator"]
