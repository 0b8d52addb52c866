"""How often each term occurs in each chunk, for :class:`~ragkit.retrieval.KeywordIndex`.

:class:`TermCounts` keeps a chunks x terms matrix of counts in compressed sparse
columns (CSC: per term, the rows holding it and how often), 6 bytes per distinct term
of a chunk (an int32 row, a uint16 count). Chunks written since the last fold wait in
one growing int32 buffer of their sorted term ids (4 bytes per term occurrence), so
that an ingest makes no Python object per term and no matrix copy per batch. The
buffer is folded into the matrix on the next search, or when it reaches 64 MB (a big
file's repeated words then cost their count, not their occurrences). A fold writes
the new matrix column by column, the old matrix's entries and then the new chunks',
a block at a time: it holds the old matrix, the buffer, the new matrix and a block,
and nothing per term in Python lists (building with ``bm25s`` took about ten times
the matrix).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["TermCounts", "sparse"]

_BLOCK = 1 << 18  # term occurrences or matrix entries handled per step of a fold
_BUFFERED = 1 << 24  # buffered terms (64 MB) that make an upsert fold
_GARBAGE = 1 << 22  # buffered terms of replaced chunks that make an upsert fold


def sparse() -> Any:
    """``scipy.sparse``, imported on first use."""
    from scipy import sparse as module  # type: ignore[import-untyped]  # no type stubs

    return module


class TermCounts:
    """Term ids of chunks by chunk id; after :meth:`fold`, a count matrix over them.

    After :meth:`fold`, ``matrix`` row ``p`` is chunk ``order[p]`` of document
    ``documents[p]``, with ``lengths[p]`` terms in all.
    """

    def __init__(self) -> None:
        self.matrix: Any = sparse().csc_matrix((0, 0), dtype=np.uint16)
        self.order: list[str] = []
        self.documents: list[str] = []
        self.lengths: NDArray[np.int64] = np.zeros(0, np.int64)
        self._row: dict[str, int] = {}  # chunk id -> matrix row, for live rows
        self._dead: list[int] = []  # rows of deleted or replaced chunks
        self._buffer = np.zeros(0, np.int32)  # sorted term ids of chunks not yet folded
        self._used = 0  # of _buffer
        self._pending: dict[str, tuple[int, int, str]] = {}  # id -> start, length, document
        self._garbage = 0  # buffered terms of chunks removed before a fold

    def __len__(self) -> int:
        return len(self._row) + len(self._pending)

    def __contains__(self, chunk_id: str) -> bool:
        return chunk_id in self._pending or chunk_id in self._row

    def ids(self) -> Iterator[str]:
        yield from self._row
        yield from self._pending

    def put(self, chunk_id: str, terms: NDArray[np.int32], document: str) -> None:
        """Insert or replace a chunk with term ids ``terms`` (in any order, repeats kept)."""
        self.remove(chunk_id)
        end = self._used + len(terms)
        if end > len(self._buffer):  # grow by a quarter: realloc, in place when it can
            self._buffer.resize(max(end, len(self._buffer) * 5 // 4, 1024), refcheck=False)
        self._buffer[self._used : end] = np.sort(terms)
        self._pending[chunk_id] = (self._used, len(terms), document)
        self._used = end
        if self._used >= _BUFFERED or self._garbage > max(_GARBAGE, self._used // 2):
            self.fold(0)

    def remove(self, chunk_id: str) -> bool:
        """Forget a chunk; whether it was there."""
        if (pending := self._pending.pop(chunk_id, None)) is not None:
            self._garbage += pending[1]
            return True
        if (row := self._row.pop(chunk_id, None)) is not None:
            self._dead.append(row)
            return True
        return False

    def fold(self, vocabulary: int) -> bool:
        """Move buffered chunks into the matrix, drop deleted rows; whether it changed.

        The matrix gets at least ``vocabulary`` columns (one per term id in use).
        """
        matrix = self.matrix
        columns = max(vocabulary, matrix.shape[1])
        if self._used:
            columns = max(columns, int(self._buffer[: self._used].max(initial=-1)) + 1)
        if not self._pending and not self._dead and matrix.shape[1] >= columns:
            return False
        order, documents, lengths = self.order, self.documents, self.lengths
        if self._dead:
            keep = np.ones(len(order), bool)
            keep[self._dead] = False
            rows = np.flatnonzero(keep)
            matrix, lengths = matrix[rows], lengths[rows]
            order = [order[p] for p in rows]
            documents = [documents[p] for p in rows]
        spans = list(self._pending.values())
        matrix = self._merge(matrix, spans, columns)
        self.matrix = matrix
        self.order = [*order, *self._pending]
        self.documents = [*documents, *(document for _, _, document in spans)]
        self.lengths = np.concatenate([lengths, np.array([n for _, n, _ in spans], np.int64)])
        self._row = {chunk_id: p for p, chunk_id in enumerate(self.order)}
        self._dead, self._pending, self._garbage, self._used = [], {}, 0, 0
        self._buffer = np.zeros(0, np.int32)
        return True

    def _runs(
        self, spans: list[tuple[int, int, str]]
    ) -> Iterator[tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.int32]]]:
        """``(rows, term ids, counts)`` of the buffered chunks' entries, a block at a time.

        Rows count from 0 at the first span; a chunk's terms are sorted in the buffer,
        so a run of one term id in one chunk is one matrix entry.
        """
        first = 0
        while first < len(spans):
            last, size = first, 0
            while last < len(spans) and (last == first or size + spans[last][1] <= _BLOCK):
                size += spans[last][1]
                last += 1
            part = spans[first:last]
            terms = np.concatenate([self._buffer[s : s + n] for s, n, _ in part])
            rows = np.repeat(np.arange(first, last, dtype=np.int32), [n for _, n, _ in part])
            change = np.ones(len(terms), bool)
            change[1:] = (terms[1:] != terms[:-1]) | (rows[1:] != rows[:-1])
            starts = np.flatnonzero(change)
            counts = np.diff(np.append(starts, len(terms))).astype(np.int32)
            yield rows[starts], terms[starts], counts
            first = last

    def _merge(self, top: Any, spans: list[tuple[int, int, str]], columns: int) -> Any:
        """CSC matrix: the rows of ``top``, then one per buffered chunk of ``spans``."""
        per_column = np.zeros(columns, np.int64)
        widest = 0
        for _, terms, counts in self._runs(spans):
            per_column += np.bincount(terms, minlength=columns)
            widest = max(widest, int(counts.max(initial=0)))
        old = top.indptr.astype(np.int64)
        old = np.concatenate([old, np.full(columns + 1 - len(old), old[-1], np.int64)])
        indptr = old + np.concatenate([[0], np.cumsum(per_column)])
        total = int(indptr[-1])
        dtype = np.result_type(top.data.dtype, np.uint16 if widest < 1 << 16 else np.uint32)
        indices, data = np.empty(total, np.int32), np.empty(total, dtype)
        start = 0  # the old entries first in each column, a block of columns at a time
        while start < columns:
            stop = int(np.searchsorted(old, old[start] + _BLOCK, side="right")) - 1
            stop = min(max(stop, start + 1), columns)
            lo, hi = old[start], old[stop]
            place = np.arange(lo, hi) + np.repeat(
                indptr[start:stop] - old[start:stop], np.diff(old[start : stop + 1])
            )
            indices[place], data[place] = top.indices[lo:hi], top.data[lo:hi]
            start = stop
        heads = indptr[:-1] + np.diff(old)  # where each column's next new entry goes
        for block in self._runs(spans):
            by_term = np.argsort(block[1], kind="stable")  # rows stay in order within a term
            rows, terms, counts = (part[by_term] for part in block)
            distinct, first, size = np.unique(terms, return_index=True, return_counts=True)
            place = heads[terms] + np.arange(len(terms)) - np.repeat(first, size)
            indices[place], data[place] = rows + top.shape[0], counts
            heads[distinct] += size
        shape = (top.shape[0] + len(spans), columns)
        return sparse().csc_matrix((data, indices, indptr), shape=shape)
