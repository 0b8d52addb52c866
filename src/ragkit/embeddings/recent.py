"""RecentVectors: the vectors of the texts embedded last, in memory, bounded.

:class:`~ragkit.embeddings.CachedEmbedder` keeps chunk vectors on disk for indexing.
What is embedded to answer a question (passage sentences, answer sentences) is not a
chunk: written there, it would grow the knowledge base with every question. RAG's
generator and verifier share a ``RecentVectors`` instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ragkit.embeddings._wrapper import WrappedEmbedder
from ragkit.protocols import Embedder

__all__ = ["RecentVectors"]


class RecentVectors(WrappedEmbedder):
    """An embedder that remembers the vectors of the last ``size`` texts, in memory.

    RAG gives one to its extractive generator and its citation verifier: both embed the
    sentences of the same retrieved passages, which are then computed once per question,
    and nothing is written to disk. Memory stays bounded: ``size`` vectors (3 MB for
    2048 vectors of 384 dimensions).

    Example:
        >>> from ragkit.testing import FakeEmbedder
        >>> recent = RecentVectors(FakeEmbedder(), size=2)
        >>> _ = recent.embed_documents(["a", "b", "a"])
        >>> recent.inner.texts_embedded
        2

    Args:
        inner: the embedder that computes vectors.
        size: texts remembered; the least recently used are forgotten first.
    """

    def __init__(self, inner: Embedder, size: int = 2048) -> None:
        self.inner = inner
        self.size = size
        self._vectors: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        found: dict[str, NDArray[np.float32]] = {}
        with self._lock:
            for text in dict.fromkeys(texts):
                if text in self._vectors:
                    self._vectors.move_to_end(text)
                    found[text] = self._vectors[text]
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            computed = dict(zip(missing, self.inner.embed_documents(missing), strict=True))
            found.update(computed)
            with self._lock:
                self._vectors.update(computed)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, self.inner.dimension), dtype=np.float32)
        return np.stack([found[t] for t in texts])
