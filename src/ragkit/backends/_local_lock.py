"""Locks: one writer process per knowledge base, and readers vs. writer in a process."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ragkit.errors import KnowledgeBaseLockedError

__all__ = ["LOCK_NAME", "KnowledgeBaseLock", "ReadWriteLock"]

LOCK_NAME = ".lock"


class KnowledgeBaseLock:
    """An exclusive, non-blocking ``flock`` on ``kb/.lock``, held while writing.

    The operating system releases the lock when the process ends, however it ends
    (``SIGKILL`` included), so a crashed writer never leaves a stale lock behind.
    Acquiring is re-entrant within one object; a second object (in this process or
    another) fails at once with :class:`~ragkit.errors.KnowledgeBaseLockedError`.

    Example:
        >>> with KnowledgeBaseLock(Path("kb")).hold():  # doctest: +SKIP
        ...     ...  # write the store, the keyword index and the record

    Args:
        folder: the knowledge-base folder.
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._file: IO[bytes] | None = None
        self._depth = 0
        self._guard = threading.Lock()

    def acquire(self) -> None:
        """Take the lock, or raise :class:`KnowledgeBaseLockedError` if another holds it."""
        import fcntl

        with self._guard:
            if self._depth:
                self._depth += 1
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file = open(self.path, "a+b")  # noqa: SIM115 - kept open while the lock is held
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                file.close()
                raise KnowledgeBaseLockedError(self.path) from exc
            except BaseException:
                file.close()
                raise
            file.seek(0)
            file.truncate()
            file.write(f"{os.getpid()}\n".encode("ascii"))
            file.flush()
            self._file = file
            self._depth = 1

    def release(self) -> None:
        """Give the lock back (the outermost release unlocks the file)."""
        import fcntl

        with self._guard:
            if not self._depth:
                return
            self._depth -= 1
            if self._depth == 0 and self._file is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
                self._file.close()
                self._file = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        """``acquire`` .. ``release`` as a ``with`` block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._depth > 0


class ReadWriteLock:
    """Many readers or one writer; a waiting writer keeps new readers out.

    ``RAG`` takes the read side around each retrieval and the write side around each
    batch the indexer writes, so a query sees a batch entirely or not at all: never a
    file's old and new chunks together, nor a chunk in the keyword index that the
    vector store has already dropped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the read side for the ``with`` block."""
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the write side for the ``with`` block (not re-entrant)."""
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
