"""BM25 for :class:`~ragkit.retrieval.KeywordIndex`, from a matrix of term counts.

:class:`BM25` scores units (a chunk, or a whole document: see ``scope.py``) from that
matrix as Lucene's BM25 does (``bm25s`` ``method="lucene"``): ``idf = log(1 + (N - df
+ 0.5) / (df + 0.5))`` over the ``N`` units, a term's weight in a unit ``idf * tf /
(tf + k1 * (1 - b + b * length / average length))``, a query's score the float32 sum
of its terms' weights (a repeated query term counts each time). Weights are computed
per query for the postings of its terms, in float64 and rounded to float32 as
``bm25s`` rounds its stored matrix, so scores are the same to the last bit or two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.retrieval._term_counts import sparse

__all__ = ["BM25"]


class BM25:
    """Lucene's BM25 over the rows of a :class:`TermCounts` matrix, grouped into units.

    Args:
        counts: the chunks x terms count matrix (CSC).
        lengths: number of terms of each chunk.
        units: the unit of each chunk (``0..n_units-1``), or ``None`` when each chunk
            is its own unit.
    """

    def __init__(
        self,
        counts: Any,
        lengths: NDArray[np.int64],
        units: NDArray[np.intp] | None,
        k1: float,
        b: float,
    ) -> None:
        self._counts = counts
        self._units = units
        per_term = np.diff(counts.indptr)
        if units is None:
            n_units, unit_lengths, df = len(lengths), lengths, per_term
        else:  # postings of units of several chunks, merged: a unit x term matrix
            n_units = int(units.max(initial=-1)) + 1
            sizes = np.bincount(units, minlength=n_units)
            self._alone = sizes[units] == 1
            rows = np.flatnonzero(~self._alone)
            part = counts[rows]
            self._group_ids, member = np.unique(units[rows], return_inverse=True)
            membership = sparse().csr_matrix(
                (np.ones(len(rows), np.int32), (member, np.arange(len(rows)))),
                shape=(len(self._group_ids), len(rows)),
            )
            self._grouped = (membership @ part).tocsc()
            unit_lengths = np.bincount(units, weights=lengths, minlength=n_units).astype(np.int64)
            df = per_term - np.diff(part.indptr) + np.diff(self._grouped.indptr)
        average = float(np.mean(unit_lengths)) if n_units else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            idf = np.log(1 + (n_units - df + 0.5) / (df + 0.5))
        self._idf = np.where(df > 0, idf, 0).astype(np.float32)
        self._norm = k1 * ((1 - b) + b * unit_lengths / (average or 1.0))
        self.n_units = n_units

    @property
    def shared(self) -> bool:
        """Whether some unit scores more than one chunk."""
        return self._units is not None

    def _postings(self, term: int) -> tuple[NDArray[np.intp], NDArray[Any]]:
        """The units holding ``term`` and how often they hold it."""
        c = self._counts
        rows = c.indices[c.indptr[term] : c.indptr[term + 1]]
        tf = c.data[c.indptr[term] : c.indptr[term + 1]]
        if self._units is None:
            return rows, tf
        alone = self._alone[rows]
        g = self._grouped
        lo, hi = g.indptr[term], g.indptr[term + 1]
        units = np.concatenate([self._units[rows[alone]], self._group_ids[g.indices[lo:hi]]])
        return units, np.concatenate([tf[alone], g.data[lo:hi]])

    def scores(self, terms: Sequence[int]) -> NDArray[np.float32]:
        """The score of every chunk (its unit's) for a query of term ids ``terms``."""
        total = np.zeros(self.n_units, np.float32)
        for term in terms:
            units, tf = self._postings(term)
            tf32 = tf.astype(np.float32)
            total[units] += (self._idf[term] * (tf32 / (self._norm[units] + tf32))).astype(
                np.float32
            )
        return total if self._units is None else total[self._units]

    def held(self, terms: Iterable[int]) -> NDArray[np.int64]:
        """How many times each chunk itself holds any of ``terms``."""
        c = self._counts
        out = np.zeros(c.shape[0], np.int64)
        for term in terms:
            lo, hi = c.indptr[term], c.indptr[term + 1]
            out[c.indices[lo:hi]] += c.data[lo:hi]
        return out
