"""Keyword retrieval: a BM25 index kept in sync with the chunks, saved to SQLite."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError
from ragkit.protocols import Filters
from ragkit.retrieval._bm25 import BM25
from ragkit.retrieval._keyword_db import KeywordDB, MemoryChunks
from ragkit.retrieval._keyword_fields import FieldColumns
from ragkit.retrieval._keyword_rank import best
from ragkit.retrieval._term_counts import TermCounts
from ragkit.retrieval.scope import MAX_DOCUMENT_CHUNKS, SCOPES, Scope, unit_rows, with_context
from ragkit.retrieval.tokenize import Tokenizer
from ragkit.stores.codec import flat_fields
from ragkit.stores.filters import matches, parse_filters
from ragkit.types import Chunk, ScoredChunk

__all__ = ["SCOPES", "BM25Retriever", "KeywordIndex", "Scope"]

logger = logging.getLogger(__name__)


class KeywordIndex:
    """BM25 over chunks (Lucene's variant, as ``bm25s`` has it), with filters and a saved copy.

    Chunks are upserted and deleted by id, like a vector store. The index keeps a
    chunks x terms matrix of term counts and folds changes into it on the first search
    after them (``_term_counts.py``, ``_bm25.py``). A chunk is indexed with its
    document's title and its heading path (``context``), so a passage deep in a
    section still matches the words that name it. With ``path``, every write
    also goes to ``path/keyword.sqlite`` (chunk JSON and its terms; nothing pickled),
    loaded on open; terms are recomputed when the tokenizer or ``context`` changed.
    Memory holds what scoring needs (vocabulary, count matrix, document ids); the
    chunks of the hits are read from the file, and the filterable fields, as compact
    columns, once per build when a search has filters.

    A short document is scored as a whole (``scope="auto"``, the default): BM25 runs
    over the terms of all its chunks, and each of its chunks gets the document's
    score; among themselves, the chunks holding more of the query's terms come first.
    An abstract cut into four chunks then matches on all its words, not only the ones
    its fourth chunk happens to hold. A document of more than ``max_document_chunks``
    chunks (a manual, a 300-page PDF) is scored chunk by chunk, where one score for the
    whole document would say nothing about which passage matches. ``scope="chunk"``
    scores every chunk on its own, ``scope="document"`` every chunk as its whole
    document.

    Example:
        >>> index = KeywordIndex()
        >>> index.upsert(chunks)  # doctest: +SKIP
        >>> index.search("connection pool size", k=5, filters={"source": "a.md"})  # doctest: +SKIP

    Args:
        path: folder to save to and load from; in memory only when None.
        tokenizer: turns chunk texts and queries into terms (default: English stems).
        k1: term-frequency saturation; higher lets repeated terms count for longer.
        b: length normalization, from 0 (none) to 1 (full).
        context: metadata keys whose string values are indexed along with the text
            (unless the text already holds them).
        scope: ``"auto"`` (whole documents of at most ``max_document_chunks`` chunks,
            chunks of longer ones), ``"chunk"`` or ``"document"``.
        max_document_chunks: the ``"auto"`` threshold; 7 was chosen on SciFact train
            (``bench/scifact_scope.py``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        context: Sequence[str] = ("title", "heading_path"),
        scope: Scope = "auto",
        max_document_chunks: int = MAX_DOCUMENT_CHUNKS,
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigurationError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        if scope not in SCOPES:
            raise ConfigurationError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
        if max_document_chunks < 1:
            raise ConfigurationError(
                f"max_document_chunks must be 1 or more, got {max_document_chunks}"
            )
        self.scope: Scope = scope
        self.max_document_chunks = max_document_chunks
        self.tokenizer = tokenizer or Tokenizer()
        self.k1, self.b = k1, b
        self.context = tuple(context)
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._counts = TermCounts()  # what scoring needs of each chunk
        self._documents: dict[str, str] = {}  # one string object per document id
        self._vocab: dict[str, int] = {}
        self._bm25: BM25 | None = None  # over the rows of _counts; None after a change
        self._saved: KeywordDB | MemoryChunks = MemoryChunks()  # chunks, read for hits
        self._columns: FieldColumns | None = None  # filterable fields, per build
        if self.path is not None:
            self._open(self.path)

    def _term_ids(self, terms: Sequence[str]) -> NDArray[np.int32]:
        vocab = self._vocab
        for term in set(terms).difference(vocab):
            vocab[term] = len(vocab)
        return np.fromiter(map(vocab.__getitem__, terms), np.int32, len(terms))

    def _put(self, chunk_id: str, terms: Sequence[str], document: str) -> None:
        document = self._documents.setdefault(document, document)
        self._counts.put(chunk_id, self._term_ids(terms), document)

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert or replace chunks by id; when an id repeats in ``chunks``, the last wins."""
        tokenize, context = self.tokenizer.tokenize, self.context
        rows = [(c, tokenize(with_context(c.text, c.metadata, context))) for c in chunks]
        with self._lock:
            self._saved.put(rows)
            for chunk, terms in rows:
                self._put(chunk.id, terms, chunk.document_id)
            self._bm25 = None

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self._lock:
            gone = [i for i in dict.fromkeys(ids) if i in self._counts]
            self._saved.delete(gone)
            for i in gone:
                self._counts.remove(i)
            self._bm25 = None if gone else self._bm25

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of every indexed chunk that matches ``filters``, sorted."""
        conditions = parse_filters(filters)
        with self._lock:
            if not conditions:
                return sorted(self._counts.ids())
            every = self._saved.every()
            return sorted(c.id for c in every if matches(conditions, flat_fields(c)))

    def count(self) -> int:
        """Number of indexed chunks."""
        with self._lock:
            return len(self._counts)

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[ScoredChunk]:
        """The ``k`` chunks with the highest BM25 score among those matching ``filters``.

        Only chunks sharing at least one term with the query are returned (with
        ``scope="auto"`` or ``"document"``: chunks whose document, scored whole, does),
        best first; of equal scores, the chunk holding more of the query's terms comes
        first, then the lower id. Filters apply before the top-k cut.
        """
        conditions = parse_filters(filters)
        terms = self.tokenizer.tokenize(query)
        with self._lock:
            if k <= 0 or not len(self._counts):
                return []
            known = [self._vocab[t] for t in terms if t in self._vocab]
            if not known:
                return []
            bm25 = self._index()
            order = self._counts.order
            scores = bm25.scores(known)
            hits = np.flatnonzero(scores > 0)
            if conditions:
                hits = hits[self._fields().mask(conditions, hits)]
            top = best(bm25, scores, hits, terms=known, order=order, k=k)
            chunks = self._saved.read([order[p] for p in top])
            return [ScoredChunk(c, float(scores[p])) for c, p in zip(chunks, top, strict=True)]

    def _fields(self) -> FieldColumns:
        """The filterable fields of the chunks in the matrix's rows, read once per build."""
        if self._columns is None:
            order = self._counts.order
            position = {chunk_id: p for p, chunk_id in enumerate(order)}
            rows = ((position[c.id], flat_fields(c)) for c in self._saved.every())
            self._columns = FieldColumns(len(order), rows)
        return self._columns

    def warm_up(self) -> None:
        """Build the BM25 matrix now rather than on the next search."""
        with self._lock:
            if len(self._counts):
                self._index()

    def _index(self) -> BM25:
        if self._bm25 is None:
            counts = self._counts
            counts.fold(len(self._vocab))
            self._columns = None  # rows may have moved, also when upserts folded them
            units = unit_rows(self.scope, self.max_document_chunks, counts.documents)
            self._bm25 = BM25(counts.matrix, counts.lengths, units, self.k1, self.b)
            n, chunks, terms = self._bm25.n_units, len(counts.order), len(self._vocab)
            logger.debug("built BM25 over %d units (%d chunks), %d terms", n, chunks, terms)
        return self._bm25

    def _open(self, folder: Path) -> None:
        settings = {**self.tokenizer.fingerprint(), "context": self.context}
        db = KeywordDB(folder, json.dumps(settings, sort_keys=True))
        self._saved = db
        if db.stale:
            saved = list(db.every())
            logger.info("term settings changed: re-tokenizing %d chunks in %s", len(saved), folder)
            self.upsert(saved)
        else:
            for chunk_id, document, terms in db.rows():
                self._put(chunk_id, terms.split(), document)
        db.mark_current()
        logger.debug("loaded %d chunks from %s", len(self._counts), db.target)

    def close(self) -> None:
        """Close the SQLite file; every write is already saved."""
        with self._lock:
            self._saved.close()

    def __enter__(self) -> KeywordIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"KeywordIndex(path={self.path}, k1={self.k1}, b={self.b}, scope={self.scope!r}, "
            f"max_document_chunks={self.max_document_chunks}, count={self.count()})"
        )


class BM25Retriever:
    """Top-k chunks by BM25 keyword score (see :class:`KeywordIndex`).

    Example:
        >>> retriever = BM25Retriever(KeywordIndex())
        >>> retriever.retrieve("anything", k=3)
        []

    Args:
        index: the keyword index to search; keep it in sync with the store (``RAG``
            and :class:`~ragkit.indexing.Indexer` do).
    """

    def __init__(self, index: KeywordIndex) -> None:
        self.index = index

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        hits = self.index.search(query, k, filters)
        logger.debug("keyword retrieve %r k=%d -> %d hits", query, k, len(hits))
        return hits
