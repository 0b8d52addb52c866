"""What every store shares about vectors: checked, made unit length, and ranked.

Re-exported by :mod:`ragkit.stores.codec`, where stores import them from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ragkit.errors import ConfigurationError
from ragkit.types import Chunk

__all__ = ["as_matrix", "as_query", "check_dimension", "rank", "top_k_expanding"]

T = TypeVar("T")


def check_dimension(dimension: object) -> None:
    """Raise :class:`ConfigurationError` unless ``dimension`` is None or a positive int."""
    if dimension is not None and (
        isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0
    ):
        raise ConfigurationError(f"dimension must be a positive int, got {dimension!r}.")


def _normalized(rows: NDArray[np.float32], names: Sequence[str]) -> NDArray[np.float32]:
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        bad = names[int(np.flatnonzero(~finite)[0])]
        raise ConfigurationError(f"The embedding of {bad} holds NaN or infinite values.")
    wide = rows.astype(np.float64)  # float32 squares overflow for large components
    norms = np.linalg.norm(wide, axis=1)
    if (norms == 0).any():
        bad = names[int(np.flatnonzero(norms == 0)[0])]
        raise ConfigurationError(f"The embedding of {bad} is all zeros; it has no direction.")
    unit: NDArray[np.float32] = (wide / norms[:, None]).astype(np.float32)
    return unit


def _numeric(array: ArrayLike, what: str) -> NDArray[np.float32]:
    try:
        return np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{what} must be an array of numbers: {exc}") from exc


def as_matrix(
    embeddings: ArrayLike, chunks: Sequence[Chunk], dimension: int | None
) -> NDArray[np.float32]:
    """Check ``embeddings`` against ``chunks`` and return them as unit float32 rows.

    Raises:
        ConfigurationError: wrong shape, wrong dimension, NaN or all-zero rows.
    """
    rows = _numeric(embeddings, "embeddings")
    if rows.ndim != 2:
        raise ConfigurationError(
            f"embeddings must be a 2-D array with one row per chunk, got shape {rows.shape}."
        )
    if rows.shape[0] != len(chunks):
        raise ConfigurationError(
            f"Got {len(chunks)} chunks but {rows.shape[0]} embedding rows; pass one row per chunk."
        )
    if dimension is not None and rows.shape[1] != dimension:
        raise ConfigurationError(
            f"The embeddings have dimension {rows.shape[1]}, but this store holds vectors of "
            f"dimension {dimension}. Use the embedder the store was built with, or a new store."
        )
    return _normalized(rows, [f"chunk {c.id!r}" for c in chunks])


def as_query(embedding: ArrayLike, dimension: int) -> NDArray[np.float32]:
    """Check a query vector and return it as a unit float32 vector of shape ``(d,)``.

    Raises:
        ConfigurationError: wrong shape or dimension, NaN or all zeros.
    """
    vector = _numeric(embedding, "The query embedding")
    if vector.ndim == 2 and vector.shape[0] == 1:
        vector = vector[0]
    if vector.ndim != 1:
        raise ConfigurationError(
            f"The query embedding must be one vector, got shape {vector.shape}."
        )
    if vector.shape[0] != dimension:
        raise ConfigurationError(
            f"The query embedding has dimension {vector.shape[0]}, but this store holds "
            f"vectors of dimension {dimension}. Embed the query with the store's embedder."
        )
    unit: NDArray[np.float32] = _normalized(vector[None, :], ["the query"])[0]
    return unit


def rank(ids: Sequence[str], scores: NDArray[np.floating[Any]], k: int) -> list[int]:
    """Positions of the ``k`` best scores, best first; equal scores in order of id."""
    n = len(ids)
    if k <= 0 or n == 0:
        return []
    if k < n:
        best = np.argpartition(-scores, k - 1)[:k]
        candidates = np.flatnonzero(scores >= scores[best].min())
    else:
        candidates = np.arange(n)
    ordered = sorted(candidates.tolist(), key=lambda i: (-float(scores[i]), ids[i]))
    return ordered[:k]


def top_k_expanding(
    fetch: Callable[[int], list[tuple[str, float, T]]], k: int, available: int
) -> list[tuple[str, float, T]]:
    """The ``k`` best ``(id, score, payload)`` hits from an index that returns top-n.

    ``fetch(n)`` returns at most ``n`` hits. One more than ``k`` is asked for, and
    more while the last hit ties with the ``k``-th, so that equal scores at the cut are
    settled by id, as in an exact search.
    """
    n = min(k + 1, available)
    while True:
        hits = sorted(fetch(n), key=lambda h: (-h[1], h[0]))
        if len(hits) <= k or n >= available or hits[-1][1] < hits[k - 1][1]:
            return hits[:k]
        n = min(2 * n, available)
