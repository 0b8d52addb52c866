"""Ranking helpers of :class:`~ragkit.retrieval.KeywordIndex`: the top-k cut, term counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["candidates", "term_counts"]


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


def term_counts(terms: Sequence[NDArray[np.int32]], vocab: dict[str, int]) -> Any:
    """How often each term id occurs in each chunk: a sparse chunks x vocabulary matrix."""
    from scipy import sparse  # type: ignore[import-untyped]  # scipy ships no type stubs

    rows = np.repeat(np.arange(len(terms)), [len(t) for t in terms])
    columns = np.concatenate(terms) if terms else np.zeros(0, np.int32)
    data = np.ones(len(columns), np.float32)
    return sparse.csc_matrix((data, (rows, columns)), shape=(len(terms), len(vocab)))
