"""Connections to a kb's database: the pool, read snapshots, write transactions, locks.

:class:`Database` is what the store, the keyword retriever, the record and the backend
share. Reads run in a transaction of their own, or, inside :meth:`Database.pinned`, in
the context's one REPEATABLE READ READ ONLY transaction, so that every query of the
block sees the same snapshot. The pinned connection is a context variable, not a
thread-local, so a search that a retriever hands to a worker thread with
:func:`contextvars.copy_context` (hybrid search runs BM25 beside the query's embedding)
reads the same snapshot; psycopg serializes the two threads' queries on it. Writes
run in a transaction that first takes the kb's transaction-level write lock. Failures
of the server become :class:`StoreError`; the pool checks a connection before handing
it out, so after a restart the next call gets a fresh one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from ragkit.backends.postgres._lock import WriterLock
from ragkit.backends.postgres._schema import WRITE_LOCK, kb_key, migrate, schema_name
from ragkit.backends.urls import PostgresSettings
from ragkit.errors import ConfigurationError, StoreError

__all__ = ["Database"]

logger = logging.getLogger(__name__)

# The HNSW index on cosine distance. A lighter graph than pgvector's default (m 16,
# ef_construction 64), so that writes stay small next to encoding: on 4,096 MiniLM
# vectors of SciFact, inserts cost 0.26 s per 1,024 against 1.34 s, and recall@10 at
# ef_search 100 is 0.996 against 0.999 (m 12: 0.47 s, 0.997).
_HNSW = (
    "CREATE INDEX chunks_embedding ON {s}.chunks USING hnsw (embedding vector_cosine_ops) "
    "WITH (m = 8, ef_construction = 32)"
)

# The tables that queries plan on, and the fewest changed rows worth an ANALYZE.
_ANALYZED = ("chunks", "terms", "documents")
_ANALYZE_MIN = 200


class Database:
    """The pool and locks of one kb (see the module docstring).

    Raises:
        StoreError: the server cannot be reached.
        ConfigurationError: the kb was made by a newer ragkit.
    """

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self.location = settings.location
        self.schema = schema_name(settings.namespace)
        self.key = kb_key(settings.namespace)
        self._dimension: int | None = None
        # The context's pinned read connection (inside pinned()).
        self._pinned: ContextVar[psycopg.Connection[Any] | None] = ContextVar(
            f"ragkit-pg-{id(self)}", default=None
        )
        self.writer_lock = WriterLock(
            lambda: self._connect(autocommit=True),
            self.errors,
            self.key,
            self.location,
            settings.lock_wait,
        )
        with self.errors("opening the knowledge base"), self._connect() as conn:
            migrate(conn, self.schema, self.location)
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
        self.iterative_scan = _version(row[0] if row else "0") >= (0, 8)
        self._pool: ConnectionPool[Any] = ConnectionPool(
            settings.dsn,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            kwargs={"connect_timeout": self._timeout()},
            configure=register_vector,
            check=ConnectionPool.check_connection,
            timeout=settings.connect_timeout,
            name=f"ragkit-{settings.namespace}",
            open=False,
        )
        with self.errors("opening the connection pool"):
            self._pool.open(wait=False)

    def _timeout(self) -> int:
        return max(1, math.ceil(self.settings.connect_timeout))

    def _connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.settings.dsn, connect_timeout=self._timeout(), autocommit=autocommit
        )

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn the database's failures inside the block into :class:`StoreError`."""
        try:
            yield
        except psycopg.OperationalError as exc:
            raise StoreError(
                f"PostgreSQL knowledge base {self.location}: {what} failed, the server is "
                f"unreachable or restarted ({_first_line(exc)}). Check that it is running; "
                "the next call connects again"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(
                f"PostgreSQL knowledge base {self.location}: {what} failed: {_first_line(exc)}"
            ) from exc

    # -- reading -----------------------------------------------------------------------

    @contextmanager
    def read(self, what: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor for reads: in the context's pinned snapshot, or a transaction of its own."""
        with self.errors(what):
            pinned = self._pinned.get()
            if pinned is not None:
                with pinned.cursor() as cur:
                    yield cur
                return
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield cur

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Every read of this context inside the block sees one snapshot (re-entrant)."""
        if self._pinned.get() is not None:
            yield
            return
        with self.errors("starting a read"):
            conn = self._pool.getconn()
        try:
            with self.errors("starting a read"):
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            token = self._pinned.set(conn)
            try:
                yield
            finally:
                self._pinned.reset(token)
        finally:
            if not conn.closed and not conn.broken:
                with suppress(psycopg.Error):
                    conn.rollback()
            self._pool.putconn(conn)

    # -- writing -----------------------------------------------------------------------

    @contextmanager
    def write(self, what: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one write transaction, holding the kb's transaction write lock."""
        with (
            self.errors(what),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (WRITE_LOCK, self.key))
            self.writer_lock.check(cur)
            yield cur

    def analyze_if_grown(self) -> None:
        """ANALYZE the kb's tables that changed by as much as they held when last analyzed.

        Autovacuum analyzes too, but up to a minute later; until then a freshly built kb
        is planned as empty (BM25 read every posting with a sequential scan: 76 ms per
        query on SciFact against 27 ms once analyzed). Doubling steps keep the cost of a
        build's ANALYZEs to a few.
        """
        with self.errors("analyzing the kb's tables"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT relname, n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables "
                "WHERE schemaname = %s AND relname = ANY(%s)",
                (self.schema, list(_ANALYZED)),
            ).fetchall()
            for table, changed, live in rows:
                if changed >= max(_ANALYZE_MIN, live - changed):
                    logger.debug("analyzing %s.%s (%d rows changed)", self.schema, table, changed)
                    conn.execute(f"ANALYZE {self.schema}.{table}")

    def writer(self) -> AbstractContextManager[None]:
        """Hold the kb's writers' lock (re-entrant per object); wait up to ``lock_wait``.

        Raises:
            KnowledgeBaseLockedError: another writer holds it after the wait.
        """
        return self.writer_lock.hold()

    # -- the vector column -------------------------------------------------------------

    def dimension(self, cur: psycopg.Cursor[Any]) -> int | None:
        """The length of the stored vectors; None before the first write with vectors."""
        if self._dimension is None:
            cur.execute(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attname = 'embedding' AND NOT attisdropped",
                (f"{self.schema}.chunks",),
            )
            row = cur.fetchone()
            self._dimension = int(row[0]) if row else None
        return self._dimension

    def ensure_dimension(self, cur: psycopg.Cursor[Any], dimension: int) -> None:
        """Make the vector column and its HNSW index on the first write (under the write
        lock); refuse vectors of another length."""
        self._dimension = None  # another process may have made it meanwhile
        stored = self.dimension(cur)
        if stored is None:
            cur.execute(
                f"ALTER TABLE {self.schema}.chunks ADD COLUMN embedding vector({dimension})"
            )
            cur.execute(_HNSW.format(s=self.schema))
            self._dimension = None  # known once this transaction commits
        elif stored != dimension:
            raise ConfigurationError(
                f"The embeddings have dimension {dimension}, but {self.location} holds vectors "
                f"of dimension {stored}. Use the embedder the knowledge base was built with, "
                "or a new kb."
            )

    def close(self) -> None:
        """Close the pool and release the writers' lock if held."""
        self.writer_lock.close()
        self._pool.close()


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(".")[:2])
    except ValueError:
        return (0,)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
