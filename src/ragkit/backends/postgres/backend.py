"""PostgresBackend: a knowledge base in PostgreSQL with pgvector, for many processes.

Everything a kb keeps lives in the schema ``ragkit_<kb>`` (see ``_schema.py``): chunks
and vectors (HNSW), keyword terms (BM25 scored in SQL), the record of indexed sources
and the manifest. A :class:`~ragkit.backends.base.Batch` is one transaction, so the
record and the chunks never disagree and a crash leaves the last batch whole or absent.
Writers of one kb take a session advisory lock for a whole add or sync; readers pin one
REPEATABLE READ snapshot per ``with backend.reading():`` block and never wait on them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from typing import Any

import psycopg

from ragkit.backends.base import Batch
from ragkit.backends.manifest import FORMAT_VERSION, Manifest
from ragkit.backends.postgres import record as record_rows
from ragkit.backends.postgres._db import Database
from ragkit.backends.postgres._write import Prepared, Terms, delete_chunks, insert_chunks
from ragkit.backends.postgres.keyword import PostgresBM25Retriever
from ragkit.backends.postgres.record import PostgresRecord
from ragkit.backends.postgres.store import PostgresStore
from ragkit.backends.urls import PostgresSettings
from ragkit.errors import ConfigurationError
from ragkit.protocols import Embedder, Retriever
from ragkit.retrieval.scope import SCOPES
from ragkit.retrieval.tokenize import Tokenizer
from ragkit.stores.codec import chunk_from_json

__all__ = ["PostgresBackend"]

logger = logging.getLogger(__name__)

_RETRIEVALS = ("hybrid", "dense", "keyword")
_PAGE = 1000
# Chunks written between two looks at the tables' statistics (``Database.analyze_if_grown``).
_CHECK_STATISTICS = 1000


class PostgresBackend:
    """A kb in PostgreSQL (see the module docstring).

    Example:
        >>> from ragkit.backends.urls import parse_location
        >>> settings = parse_location("postgresql://me@db/app?kb=docs")
        >>> backend = PostgresBackend(settings)  # doctest: +SKIP
        >>> with backend.reading():  # doctest: +SKIP
        ...     backend.retriever("hybrid", embedder).retrieve("pool size", k=5)

    Args:
        settings: the parsed ``postgresql://`` URL.
        keyword_scope: what BM25 scores: ``"auto"``, ``"chunk"`` or ``"document"``.

    Raises:
        StoreError: the server cannot be reached.
        ConfigurationError: bad ``keyword_scope``, or a kb made by a newer ragkit.
    """

    name = "postgresql"

    def __init__(self, settings: PostgresSettings, *, keyword_scope: str = "auto") -> None:
        if keyword_scope not in SCOPES:
            raise ConfigurationError(
                f"unknown keyword_scope {keyword_scope!r}; use one of {', '.join(SCOPES)}"
            )
        self.settings = settings
        self.location = settings.location
        self.keyword_scope = keyword_scope
        self._db = Database(settings)
        self._terms = Terms(Tokenizer())
        self._store = PostgresStore(self._db, self._terms)
        self._record = PostgresRecord(self._db)
        self._changed = 0  # chunks written since the statistics were last looked at
        try:
            self._sync_terms()
        except BaseException:
            self._db.close()
            raise

    @property
    def store(self) -> PostgresStore:
        return self._store

    @property
    def record(self) -> PostgresRecord:
        return self._record

    # -- manifest ----------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        with self._db.read("reading the kb's settings") as cur:
            cur.execute(f"SELECT value FROM {self._db.schema}.meta WHERE key = %s", (key,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, cur: psycopg.Cursor[Any], key: str, value: str) -> None:
        cur.execute(
            f"INSERT INTO {self._db.schema}.meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def read_manifest(self) -> Manifest | None:
        text = self._meta("manifest")
        if text is None:
            return None
        try:
            data = json.loads(text)
            version = int(data.get("format_version", 0))
        except (ValueError, AttributeError) as exc:
            raise ConfigurationError(
                f"{self.location} holds an unreadable manifest ({exc}); rebuild the kb"
            ) from exc
        if version > FORMAT_VERSION:
            raise ConfigurationError(
                f"{self.location} was written by a newer ragkit (format {version}; this one "
                f"reads up to {FORMAT_VERSION}); upgrade ragkit to open it"
            )
        return Manifest(**{k: data[k] for k in Manifest.__dataclass_fields__ if k in data})

    def write_manifest(self, manifest: Manifest) -> None:
        text = json.dumps(asdict(manifest), sort_keys=True)
        with self._db.write("saving the manifest") as cur:
            self._set_meta(cur, "manifest", text)

    # -- writes ------------------------------------------------------------------------

    def write(self, batch: Batch) -> None:
        """Apply the whole batch in one transaction (nothing of it on any failure)."""
        prepared = None
        if batch.upsert:
            prepared = self._store.prepare(batch.upsert, batch.vectors)
        schema = self._db.schema
        with self._db.write("writing a batch") as cur:
            record_rows.begin(cur, schema, batch.begin)
            if prepared is not None:
                self._store.write(cur, prepared)
            delete_chunks(cur, schema, batch.delete)
            if batch.reindex:
                self._reindex(cur, batch.reindex)
            record_rows.put(cur, schema, batch.put)
            record_rows.finish(cur, schema, batch.done, batch.removed)
        self._changed += len(batch.upsert) + len(batch.delete)
        if self._changed >= _CHECK_STATISTICS:
            self._changed = 0
            self._db.analyze_if_grown()

    def _reindex(self, cur: psycopg.Cursor[Any], ids: Sequence[str]) -> None:
        """Write the terms of stored chunks again (chunks, vectors and all)."""
        ordered = sorted(set(ids))
        for i in range(0, len(ordered), _PAGE):
            cur.execute(
                f"SELECT chunk, embedding FROM {self._db.schema}.chunks WHERE id = ANY(%s)",
                (ordered[i : i + _PAGE],),
            )
            rows = cur.fetchall()
            if rows:
                import numpy as np

                chunks = [chunk_from_json(text) for text, _ in rows]
                vectors = np.stack([np.asarray(v, np.float32) for _, v in rows])
                insert_chunks(cur, self._db.schema, Prepared.of(chunks, vectors, self._terms))

    def _sync_terms(self) -> None:
        """Re-tokenize every chunk when the tokenizer's settings differ from the saved ones."""
        wanted = json.dumps(
            {**self._terms.tokenizer.fingerprint(), "context": list(self._terms.context)},
            sort_keys=True,
        )
        if self._meta("keyword") == wanted:
            return
        with self._db.write("re-tokenizing the keyword terms") as cur:
            cur.execute(f"SELECT value FROM {self._db.schema}.meta WHERE key = 'keyword'")
            row = cur.fetchone()
            if row is not None and row[0] != wanted:
                cur.execute(f"SELECT id FROM {self._db.schema}.chunks")
                ids = [r[0] for r in cur.fetchall()]
                logger.info("term settings changed: re-tokenizing %d chunks", len(ids))
                self._reindex(cur, ids)
            self._set_meta(cur, "keyword", wanted)

    # -- locks, retrievers -------------------------------------------------------------

    def writing(self) -> AbstractContextManager[None]:
        """The kb's writers' lock (advisory, on a connection of its own); waits up to
        ``lock_wait`` seconds, then raises
        :class:`~ragkit.errors.KnowledgeBaseLockedError`."""
        return self._db.writer()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One REPEATABLE READ snapshot for this thread's reads inside the block."""
        with self._db.pinned():
            yield

    def keyword_retriever(self) -> PostgresBM25Retriever:
        """BM25 over the kb, scored in the database."""
        return PostgresBM25Retriever(self._db, self._terms.tokenizer, scope=self.keyword_scope)

    def retriever(self, retrieval: str, embedder: Embedder) -> Retriever:
        from ragkit.retrieval import DenseRetriever, HybridRetriever

        if retrieval not in _RETRIEVALS:
            raise ConfigurationError(
                f"unknown retrieval {retrieval!r}; use one of {', '.join(_RETRIEVALS)}"
            )
        if retrieval == "keyword":
            return self.keyword_retriever()
        dense = DenseRetriever(embedder, self._store)
        if retrieval == "dense":
            return dense
        return HybridRetriever(dense, self.keyword_retriever(), parallel=True)

    def close(self) -> None:
        """Close the pool (and release the writers' lock if still held)."""
        self._db.close()

    def __enter__(self) -> PostgresBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresBackend({self.location!r}, keyword_scope={self.keyword_scope!r})"
