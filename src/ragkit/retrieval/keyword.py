"""Keyword retrieval: a BM25 index (bm25s) kept in sync with the chunks, saved to SQLite."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import Filters
from ragkit.retrieval.scope import (
    MAX_DOCUMENT_CHUNKS,
    SCOPES,
    Scope,
    build_units,
    rank_shared,
    with_context,
)
from ragkit.retrieval.tokenize import Tokenizer
from ragkit.stores.codec import chunk_from_json, chunk_to_json, flat_fields, rank
from ragkit.stores.filters import matches, parse_filters
from ragkit.types import Chunk, Scalar, ScoredChunk

__all__ = ["SCOPES", "BM25Retriever", "KeywordIndex", "Scope"]

logger = logging.getLogger(__name__)

DB_FILE = "keyword.sqlite"
_FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (id TEXT PRIMARY KEY, chunk TEXT NOT NULL, terms TEXT NOT NULL);
"""


@dataclass(slots=True)
class _Entry:
    """One indexed chunk; loaded ones keep their JSON until a search needs them."""

    terms: NDArray[np.int32]  # ids into the vocabulary, in text order
    json: str | None = None
    _chunk: Chunk | None = None
    _fields: dict[str, Scalar] | None = None

    @property
    def chunk(self) -> Chunk:
        if self._chunk is None:
            assert self.json is not None
            self._chunk = chunk_from_json(self.json)
        return self._chunk

    @property
    def fields(self) -> dict[str, Scalar]:
        if self._fields is None:
            self._fields = flat_fields(self.chunk)
        return self._fields


class KeywordIndex:
    """BM25 over chunks (Lucene's variant, via bm25s), with filters and a saved copy.

    Chunks are upserted and deleted by id, like a vector store. bm25s indexes are
    static, so the index keeps each chunk's terms and rebuilds the bm25s matrix on the
    first search after a change. A chunk is indexed with its document's title and its
    heading path (``context``), so a passage deep in a section still matches the words
    that name it. With ``path``, every write also goes to ``path/keyword.sqlite``
    (chunk JSON and its terms; nothing pickled), loaded on open; terms are recomputed
    when the tokenizer or ``context`` changed.

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
        self._vocab: dict[str, int] = {}
        self._bm25: Any = None  # bm25s.BM25 over the units of _order, or None after a change
        self._order: list[str] = []
        self._rows: NDArray[np.intp] | None = None  # position in _order -> unit row
        # chunk x term counts (scipy CSC), when some units score several chunks
        self._counts: Any = None
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            self._open(self.path)

    def _term_ids(self, terms: Sequence[str]) -> NDArray[np.int32]:
        vocab = self._vocab
        for term in set(terms).difference(vocab):
            vocab[term] = len(vocab)
        return np.fromiter(map(vocab.__getitem__, terms), np.int32, len(terms))

    def _terms(self, chunk: Chunk) -> list[str]:
        return self.tokenizer.tokenize(with_context(chunk.text, chunk.metadata, self.context))

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert or replace chunks by id; when an id repeats in ``chunks``, the last wins."""
        rows = [(c, self._terms(c)) for c in chunks]
        with self._lock:
            self._write(
                "INSERT OR REPLACE INTO chunks (id, chunk, terms) VALUES (?, ?, ?)",
                [(c.id, chunk_to_json(c), " ".join(t)) for c, t in rows],
            )
            for chunk, terms in rows:
                self._entries[chunk.id] = _Entry(self._term_ids(terms), _chunk=chunk)
            self._bm25 = None

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self._lock:
            gone = [i for i in dict.fromkeys(ids) if i in self._entries]
            self._write("DELETE FROM chunks WHERE id = ?", [(i,) for i in gone])
            for i in gone:
                del self._entries[i]
            self._bm25 = None if gone else self._bm25

    def ids(self, filters: Filters | None = None) -> list[str]:
        """Ids of every indexed chunk that matches ``filters``, sorted."""
        conditions = parse_filters(filters)
        with self._lock:
            return sorted(i for i, e in self._entries.items() if matches(conditions, e.fields))

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
                entries = self._entries
                keep = [matches(conditions, entries[self._order[p]].fields) for p in hits]
                hits = hits[np.asarray(keep, dtype=bool)]
            if self._counts is None:
                ids = [self._order[p] for p in hits]
                best = [hits[j] for j in rank(ids, scores[hits], k)]
            else:  # chunks of a document share its score: the query terms each holds
                wanted = sorted(set(known))  # a repeated query word counts once here
                own = np.asarray(self._counts[:, wanted].sum(axis=1)).ravel()[hits]
                best = [hits[j] for j in rank_shared(scores[hits], own, self._order, hits, k)]
            entries = self._entries
            return [ScoredChunk(entries[self._order[p]].chunk, float(scores[p])) for p in best]

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
                lambda: [entries[i].chunk.document_id for i in self._order],
            )
            self._rows, self._counts = units.rows, None
            if units.shared:
                self._counts = _term_counts([entries[i].terms for i in self._order], self._vocab)
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

    def _write(self, sql: str, rows: list[tuple[str, ...]]) -> None:
        if self._db is None or not rows:
            return
        try:
            with self._db:
                self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"Could not write the keyword index in {self.path}: {exc}") from exc

    def _open(self, folder: Path) -> None:
        if folder.exists() and not folder.is_dir():
            raise ConfigurationError(f"KeywordIndex path {folder} is a file, not a folder.")
        target = folder / DB_FILE
        settings = {**self.tokenizer.fingerprint(), "context": self.context}
        wanted = json.dumps(settings, sort_keys=True)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(target), check_same_thread=False)
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            rows = db.execute("SELECT id, chunk, terms FROM chunks ORDER BY rowid").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(
                f"Could not open the keyword index {target} ({exc}); delete {folder} "
                "and it is rebuilt from the vector store when the knowledge base opens."
            ) from exc
        if meta.get("format", str(_FORMAT)) != str(_FORMAT):
            db.close()
            raise StoreError(f"{target} has format {meta['format']}, expected {_FORMAT}.")
        self._db = db
        if rows and meta.get("terms") != wanted:
            logger.info("term settings changed: re-tokenizing %d chunks in %s", len(rows), target)
            self.upsert([chunk_from_json(text) for _, text, _ in rows])
        else:
            for chunk_id, text, terms in rows:
                self._entries[chunk_id] = _Entry(self._term_ids(terms.split()), json=text)
        self._write(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("format", str(_FORMAT)), ("terms", wanted)],
        )
        logger.debug("loaded %d chunks from %s", len(rows), target)

    def close(self) -> None:
        """Close the SQLite file; every write is already saved."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> KeywordIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"KeywordIndex(path={self.path}, k1={self.k1}, b={self.b}, scope={self.scope!r}, "
            f"max_document_chunks={self.max_document_chunks}, count={self.count()})"
        )


def _term_counts(terms: Sequence[NDArray[np.int32]], vocab: dict[str, int]) -> Any:
    """How often each term id occurs in each chunk: a sparse chunks x vocabulary matrix."""
    from scipy import sparse  # type: ignore[import-untyped]  # scipy ships no type stubs

    rows = np.repeat(np.arange(len(terms)), [len(t) for t in terms])
    columns = np.concatenate(terms) if terms else np.zeros(0, np.int32)
    data = np.ones(len(columns), np.float32)
    return sparse.csc_matrix((data, (rows, columns)), shape=(len(terms), len(vocab)))


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
