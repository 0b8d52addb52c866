"""Ranking helpers of :class:`~ragkit.retrieval.KeywordIndex`: the top-k cut and order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from ragkit.retrieval._bm25 import BM25
from ragkit.retrieval.scope import rank_shared
from ragkit.stores.codec import rank

__all__ = ["best", "candidates"]


def candidates(scores: NDArray[np.float32], hits: NDArray[np.intp], k: int) -> NDArray[np.intp]:
    """The ``hits`` that can be among the ``k`` best: all scoring at least the k-th best.

    ``scores[p]`` is the score of hit ``p``. Ties at the cut are all kept, so ranking
    these gives the same top ``k``, in the same order, as ranking every hit, while
    only about ``k`` hits are turned into Python objects.
    """
    if hits.size <= k:
        return hits
    cut = hits.size - k
    chosen: NDArray[np.intp] = hits[scores[hits] >= np.partition(scores[hits], cut)[cut]]
    return chosen


def best(
    bm25: BM25,
    scores: NDArray[np.float32],
    hits: NDArray[np.intp],
    *,
    terms: Iterable[int],
    order: Sequence[str],
    k: int,
) -> list[int]:
    """The ``k`` best of ``hits`` (chunk positions, ids in ``order``), best first.

    By score, then, when chunks share their document's score, by how many times each
    holds the query's ``terms`` itself (a repeated query term counts once), then by id.
    """
    hits = candidates(scores, hits, k)
    if not bm25.shared:
        return [hits[j] for j in rank([order[p] for p in hits], scores[hits], k)]
    own = bm25.held(set(terms))[hits]
    return [hits[j] for j in rank_shared(scores[hits], own, order, hits, k)]
