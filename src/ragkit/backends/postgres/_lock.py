"""The writers' lock of a kb: a session advisory lock on a connection of its own.

One add or sync holds it from start to end, across many write transactions (each of
which goes through the pool). If its connection dies (a server restart), PostgreSQL
drops the lock; every write made while it is held checks that it still is, so a writer
that lost it stops instead of interleaving with the next one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

import psycopg

from ragkit.backends.postgres._schema import WRITER_LOCK
from ragkit.errors import KnowledgeBaseLockedError, StoreError

__all__ = ["WriterLock"]

logger = logging.getLogger(__name__)


class WriterLock:
    """Re-entrant per object; waits up to ``lock_wait`` seconds for another holder.

    Args:
        connect: opens a new autocommit connection.
        errors: turns database failures inside a block into ``StoreError``.
        key: the kb's advisory lock key.
        location: the kb, for messages.
        lock_wait: seconds to wait before :class:`KnowledgeBaseLockedError`.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        errors: Callable[[str], AbstractContextManager[None]],
        key: int,
        location: str,
        lock_wait: float,
    ) -> None:
        self._connect, self._errors = connect, errors
        self.key, self.location, self.lock_wait = key, location, lock_wait
        self._guard = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._depth = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the block.

        Raises:
            KnowledgeBaseLockedError: another writer holds it after the wait.
        """
        with self._guard:
            if self._depth:
                self._depth += 1
            else:
                self._conn = self._take()
                self._depth = 1
        try:
            yield
        finally:
            with self._guard:
                self._depth -= 1
                if not self._depth:
                    self._release()

    def _take(self) -> psycopg.Connection[Any]:
        with self._errors("taking the writers' lock"):
            conn = self._connect()
            try:
                wait = f"{max(1, round(self.lock_wait * 1000))}ms"
                conn.execute("SELECT set_config('lock_timeout', %s, false)", (wait,))
                conn.execute("SELECT pg_advisory_lock(%s, %s)", (WRITER_LOCK, self.key))
            except psycopg.errors.LockNotAvailable:
                conn.close()
                raise KnowledgeBaseLockedError(f"the writers' lock of {self.location}") from None
            except BaseException:
                conn.close()
                raise
        logger.debug("took the writers' lock of %s", self.location)
        return conn

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):  # else the lock went with its connection
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (WRITER_LOCK, self.key))
            conn.close()

    def check(self, cur: psycopg.Cursor[Any]) -> None:
        """Raise :class:`StoreError` when the lock is held by this object but was lost."""
        conn = self._conn
        if not self._depth or conn is None:
            return
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = %s AND classid = %s::oid AND objid = %s::oid AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            (conn.info.backend_pid, WRITER_LOCK, self.key & 0xFFFFFFFF),
        )
        row = cur.fetchone()
        if not (row and row[0]):
            raise StoreError(
                f"PostgreSQL knowledge base {self.location}: the writers' lock was lost (the "
                "server restarted or the connection dropped); nothing was written. Start the "
                "add or sync again"
            )

    def close(self) -> None:
        """Release the lock now, held or not."""
        with self._guard:
            self._depth = 0
            self._release()
