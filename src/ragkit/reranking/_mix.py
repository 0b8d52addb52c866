"""Mixing a retriever's scores with a reranker's own, on one scale."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ragkit.types import ScoredChunk

__all__ = ["mix_scores", "standardize"]


def standardize(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Zero mean, unit variance; all zeros when the values are all equal."""
    spread = float(values.std())
    if spread == 0.0 or not math.isfinite(spread):
        return np.zeros_like(values)
    standardized: NDArray[np.float64] = (values - values.mean()) / spread
    return standardized


def mix_scores(
    hits: Sequence[ScoredChunk], own: Sequence[float], weight: float, k: int
) -> list[ScoredChunk]:
    """The ``k`` best hits by ``(1 - weight) * z(retriever) + weight * z(own)``.

    Both score lists are standardized over the hits first, so their scales do not
    matter; ties keep the retriever's order. The returned scores are the mixed ones.
    """
    retrieved = np.asarray([h.score for h in hits], dtype=np.float64)
    theirs = np.asarray(own, dtype=np.float64)
    mixed = (1.0 - weight) * standardize(retrieved) + weight * standardize(theirs)
    order = sorted(range(len(hits)), key=lambda i: (-mixed[i], i))[:k]
    return [ScoredChunk(hits[i].chunk, float(mixed[i])) for i in order]
