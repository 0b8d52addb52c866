"""A query adapter at query time: a linear map on query vectors, documents untouched.

``ragkit finetune adapter`` (:mod:`ragkit.training.fast`) fits a :class:`QueryAdapter`
for a kb's embedder and writes it as ``adapter.npz``; :class:`AdaptedEmbedder` applies
it to ``embed_query`` only and reports the inner model id, so a kb built with the
inner embedder opens with it unchanged. A kb that records an adapter
(``RAG.use_query_adapter``) applies it when opened without an embedder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ragkit.embeddings._wrapper import WrappedEmbedder
from ragkit.errors import ConfigurationError
from ragkit.protocols import Embedder

__all__ = [
    "ADAPTER_FILE",
    "AdaptedEmbedder",
    "QueryAdapter",
    "load_query_adapter",
    "unadapted",
]

#: The adapter's file in a folder ``ragkit finetune adapter`` wrote.
ADAPTER_FILE = "adapter.npz"


@dataclass(frozen=True)
class QueryAdapter:
    """A ``d x d`` matrix applied to query vectors (then re-normalized)."""

    weight: NDArray[np.float32]
    model_id: str

    def apply(self, vector: NDArray[np.float32]) -> NDArray[np.float32]:
        moved = self.weight @ vector
        out: NDArray[np.float32] = (moved / max(float(np.linalg.norm(moved)), 1e-12)).astype(
            np.float32
        )
        return out

    def save(self, path: str | Path) -> None:
        """Save as ``.npz`` (the matrix and the base model id it was trained for)."""
        np.savez(Path(path), weight=self.weight, model_id=np.array(self.model_id))

    @classmethod
    def load(cls, path: str | Path) -> QueryAdapter:
        with np.load(Path(path), allow_pickle=False) as data:
            return cls(data["weight"].astype(np.float32), str(data["model_id"]))


class AdaptedEmbedder(WrappedEmbedder):
    """An embedder whose query vectors go through a :class:`QueryAdapter`.

    Documents are embedded by ``inner`` unchanged and the model id is ``inner``'s, so
    a kb built with ``inner`` needs no re-embedding.

    Raises:
        ConfigurationError: the adapter was trained for another model.
    """

    def __init__(self, inner: Embedder, adapter: QueryAdapter) -> None:
        if adapter.model_id != inner.model_id:
            raise ConfigurationError(
                f"the query adapter was trained for {adapter.model_id!r}, not {inner.model_id!r}"
            )
        self.inner = inner
        self.adapter = adapter

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> NDArray[np.float32]:
        return self.adapter.apply(self.inner.embed_query(text))


def load_query_adapter(path: str | os.PathLike[str]) -> QueryAdapter:
    """The adapter in ``path``: a folder ``ragkit finetune adapter`` wrote, or its
    ``adapter.npz``.

    Raises:
        ConfigurationError: no adapter there (a folder whose run kept no adapter, or a
            missing or unreadable file).
    """
    file = Path(path)
    if file.is_dir():
        file = file / ADAPTER_FILE
    try:
        return QueryAdapter.load(file)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigurationError(
            f"{file} holds no query adapter ({exc}); give the folder ragkit finetune "
            "adapter wrote when it promoted one"
        ) from exc


def unadapted(embedder: Embedder) -> Embedder:
    """``embedder`` without its query adapter, if it has one."""
    return embedder.inner if isinstance(embedder, AdaptedEmbedder) else embedder
