"""Keyword retrieval: a BM25 index (bm25s) kept in sync with the chunks, saved to SQLite."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError
from ragkit.protocols import Filters
from ragkit.retrieval._keyword_db import KeywordDB, MemoryChunks
from ragkit.retrieval._keyword_fields import FieldColumns
from ragkit.retrieval._keyword_rank import candidates, term_counts
from ragkit.retrieval.scope import (
    MAX_DOCUMENT_CHUNKS,
    SCOPES,
    Scope,
    build_units,
    rank_shared,
    with_context,
)
from ragkit.retrieval.tokenize import Tokenizer
from ragkit.stores.codec import flat_fields, rank
from ragkit.stores.filters import matches, parse_filters
from ragkit.types import Chunk, ScoredChunk

__all__ = ["SCOPES", "BM25Retriever", "KeywordIndex", "Scope"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    """What scoring needs of one indexed chunk; the chunk itself is read for hits only."""

    terms: NDArray[np.int32]  # ids into the vocabulary, in text order
    document: str


class KeywordIndex:
    """BM25 over chunks (Lucene's variant, via bm25s), with filters and a saved copy.

    Chunks are upserted and deleted by id, like a vector store. bm25s indexes are
    static, so the index keeps each chunk's terms and rebuilds the bm25s matrix on the
    first search after a change. A chunk is indexed with its document's title and its
    heading path (``context``), so a passage deep in a section still matches the words
    that name it. With ``path``, every write also goes to ``path/keyword.sqlite``
    (chunk JSON and its terms; nothing pickled), loaded on open; terms are recomputed
    when the tokenizer or ``context`` changed. Memory then holds what scoring needs
    (term ids, document ids, the BM25 matrix); the chunks of the hits are read from
    the file, and the filterable fields, as compact columns, once per build when a
    search has filters.

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
        self._entries: dict[str, _Entry] = {}
        self._documents: dict[str, str] = {}  # one string object per document id
        self._vocab: dict[str, int] = {}
        self._bm25: Any = None  # bm25s.BM25 over the units of _order, or None after a change
        self._order: list[str] = []
        self._rows: NDArray[np.intp] | None = None  # position in _order -> unit row
        # chunk x term counts (scipy CSC), when some units score several chunks
        self._counts: Any = None
        self._saved: KeywordDB | MemoryChunks = MemoryChunks()  # chunks, read for hits
        self._columns: FieldColumns | None = None  # filterable fields, per build
        if self.path is not None:
            self._open(self.path)

    def _term_ids(self, terms: Sequence[str]) -> NDArray[np.int32]:
        vocab = self._vocab
        for term in set(terms).difference(vocab):
            vocab[term] = len(vocab)
        return np.fromiter(map(vocab.__getitem__, terms), np.int32, len(terms))

    def _terms(self, chunk: Chunk) -> list[str]:
        return self.tokenizer.tokenize(with_context(chunk.text, chunk.metadata, self.context))

    def _entry(self, terms: Sequence[str], document: str) -> _Entry:
        return _Entry(self._term_ids(terms), self._documents.setdefault(document, document))

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert or replace chunks by id; when an id repeats in ``chunks``, the last wins."""
        rows = [(c, self._terms(c)) for c in chunks]
        with self._lock:
            self._saved.put(rows)
            for chunk, terms in rows:
                self._entries[chunk.id] = self._entry(terms, chunk.document_id)
            self._bm25 = None

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self._lock:
            gone = [i for i in dict.fromkeys(ids) if i in self._entries]
            self._saved.delete(gone)
            for i in gone:
                del self._entries[i]
            self._bm25 = None if gone else self._bm25

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of every indexed chunk that matches ``filters``, sorted."""
        conditions = parse_filters(filters)
        with self._lock:
            if not conditions:
                return sorted(self._entries)
            every = self._saved.every()
            return sorted(c.id for c in every if matches(conditions, flat_fields(c)))

    def count(self) -> int:
        """Number of indexed chunks."""
        with self._lock:
            return len(self._entries)

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
            if k <= 0 or not self._entries:
                return []
            known = [self._vocab[t] for t in terms if t in self._vocab]
            if not known:
                return []
            bm25 = self._index()
            scores: NDArray[np.float32] = bm25.get_scores_from_ids(known)
            if self._rows is not None:
                scores = scores[self._rows]
            hits = np.flatnonzero(scores > 0)
            if conditions:
                hits = hits[self._fields().mask(conditions, hits)]
            hits = candidates(scores, hits, k)
            if self._counts is None:
                ids = [self._order[p] for p in hits]
                best = [hits[j] for j in rank(ids, scores[hits], k)]
            else:  # chunks of a document share its score: the query terms each holds
                wanted = sorted(set(known))  # a repeated query word counts once here
                own = np.asarray(self._counts[hits][:, wanted].sum(axis=1)).ravel()
                best = [hits[j] for j in rank_shared(scores[hits], own, self._order, hits, k)]
            chunks = self._saved.read([self._order[p] for p in best])
            return [ScoredChunk(c, float(scores[p])) for c, p in zip(chunks, best, strict=True)]

    def _fields(self) -> FieldColumns:
        """The filterable fields of the chunks in ``_order``, read once per build."""
        if self._columns is None:
            position = {chunk_id: p for p, chunk_id in enumerate(self._order)}
            rows = ((position[c.id], flat_fields(c)) for c in self._saved.every())
            self._columns = FieldColumns(len(self._order), rows)
        return self._columns

    def warm_up(self) -> None:
        """Build the BM25 matrix now rather than on the next search."""
        with self._lock:
            if self._entries:
                self._index()

    def _index(self) -> Any:
        if self._bm25 is None:
            self._order = list(self._entries)
            entries = self._entries
            units = build_units(
                self.scope,
                self.max_document_chunks,
                [entries[i].terms for i in self._order],
                lambda: [entries[i].document for i in self._order],
                len(self._vocab),
            )
            self._rows, self._counts, self._columns = units.rows, None, None
            if units.shared:
                self._counts = term_counts([entries[i].terms for i in self._order], self._vocab)
            self._bm25 = self._matrix(units.corpus)
            logger.debug(
                "built BM25 over %d units (%d chunks), %d terms",
                len(units.corpus),
                len(self._order),
                len(self._vocab),
            )
        return self._bm25

    def _matrix(self, corpus: list[list[int]]) -> Any:
        import bm25s

        bm25 = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        bm25.index((corpus, self._vocab), create_empty_token=False, show_progress=False)
        return bm25

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
                self._entries[chunk_id] = self._entry(terms.split(), document)
        db.mark_current()
        logger.debug("loaded %d chunks from %s", len(self._entries), db.target)

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
