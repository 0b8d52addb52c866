"""What ragkit's model embedders share: query and document prefixes around one encode."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["PrefixedEncoder"]


class PrefixedEncoder:
    """``embed_documents`` and ``embed_query`` from one ``_encode`` of a list of texts.

    Subclasses set ``query_prefix`` and ``document_prefix`` and define ``dimension``
    and ``_encode`` (unit vectors, float32, one row a text).
    """

    query_prefix: str
    document_prefix: str

    @property
    def dimension(self) -> int:
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        raise NotImplementedError

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode([self.document_prefix + t for t in texts])

    def embed_query(self, text: str) -> NDArray[np.float32]:
        vector: NDArray[np.float32] = self._encode([self.query_prefix + text])[0]
        return vector
