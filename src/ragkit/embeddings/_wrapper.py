"""The part of an embedder that wraps another and adds to its document vectors only."""

from __future__ import annotations

from numpy import float32
from numpy.typing import NDArray

from ragkit.protocols import Embedder

__all__ = ["WrappedEmbedder"]


class WrappedEmbedder:
    """Takes ``model_id``, ``dimension`` and queries from ``inner``, unchanged.

    Subclasses set ``self.inner`` and define ``embed_documents``.
    """

    inner: Embedder

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed_query(self, text: str) -> NDArray[float32]:
        return self.inner.embed_query(text)
