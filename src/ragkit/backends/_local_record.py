"""The local folder's record of what a kb holds: source -> content hash -> chunk ids.

The record (``kb/index.sqlite``) is what makes ingest incremental and crash safe. Each
row says which chunks one source produced, from which content (a hash of the file's
bytes) and with which settings (a hash of the chunker and embedder settings), so an
unchanged file is skipped without being read twice, and a changed one has its old
chunks replaced.

Writes follow one protocol, so that a process killed at any moment leaves a record
that can be repaired:

1. mark the sources of a batch ``pending``, with their new chunk ids and the ids they
   had before (one SQLite transaction);
2. write the store and the keyword index (new chunks first, then delete stale ones);
3. mark them ``done`` (one transaction).

On the next write, :meth:`IndexRecord.pending` lists what a crash interrupted, and the
indexer repairs each source from what the store actually holds (see
the indexer's ``recover``). Nothing here is pickled: rows are text and
JSON.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragkit.backends.base import Change, RecordEntry
from ragkit.errors import ConfigurationError, StoreError

__all__ = ["RECORD_NAME", "IndexRecord"]

logger = logging.getLogger(__name__)

RECORD_NAME = "index.sqlite"
#: Bumped when the record's tables change incompatibly.
RECORD_FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    previous_ids TEXT,
    updated_at REAL NOT NULL
);
"""


class IndexRecord:
    """What is indexed, per source, in SQLite (WAL mode); in memory without a path.

    Example:
        >>> record = IndexRecord()
        >>> record.get("a.txt") is None
        True

    Args:
        path: the SQLite file (``kb/index.sqlite``); ``None`` keeps it in memory.

    Raises:
        StoreError: the file is not a readable record; the message says how to rebuild.
        ConfigurationError: the file was written by a newer ragkit.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self.created = self.path is None or not self.path.exists()
        target = ":memory:" if self.path is None else str(self.path)
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            if self.path is not None:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"Could not open the index record {self.path} ({exc}). Delete that file: "
                "it is rebuilt from the vector store on the next open, and the next add "
                "re-checks every file (vectors come from the embedding cache)."
            ) from exc
        version = int(meta.get("format", RECORD_FORMAT))
        if version > RECORD_FORMAT:
            db.close()
            raise ConfigurationError(
                f"{self.path} was written by a newer ragkit (record format {version}; this "
                f"one reads up to {RECORD_FORMAT}); upgrade ragkit to open it"
            )
        if "format" not in meta:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (str(RECORD_FORMAT),))
        self._db = db

    # -- reading ---------------------------------------------------------------------

    def get(self, source: str) -> RecordEntry | None:
        """The entry of ``source``, or None when it is not indexed."""
        with self._lock:
            row = self._db.execute(_SELECT + " WHERE source = ?", (source,)).fetchone()
        return None if row is None else _entry(row)

    def entries(self) -> dict[str, RecordEntry]:
        """Every entry, by source."""
        with self._lock:
            rows = self._db.execute(_SELECT + " ORDER BY source").fetchall()
        return {row[0]: _entry(row) for row in rows}

    def sources(self) -> list[str]:
        """Every recorded source, sorted."""
        with self._lock:
            return [s for (s,) in self._db.execute("SELECT source FROM sources ORDER BY source")]

    def pending(self) -> list[RecordEntry]:
        """Entries whose last write did not finish (a crash, or a write in progress)."""
        with self._lock:
            rows = self._db.execute(_SELECT + " WHERE state = 'pending' ORDER BY source")
            return [_entry(row) for row in rows.fetchall()]

    def chunk_total(self) -> int:
        """Number of chunk ids over all sources (what the store should hold)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(json_array_length(chunk_ids)), 0) FROM sources"
            ).fetchone()
            return int(row[0])

    def remove(self, sources: Iterable[str]) -> None:
        """Drop entries, in one transaction."""
        self.finish(removed=sources)

    def count(self) -> int:
        """Number of recorded sources."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM sources").fetchone()[0])

    # -- writing ---------------------------------------------------------------------

    def begin(self, changes: Sequence[Change]) -> None:
        """Mark ``changes`` pending, in one transaction, before the store is written."""
        now = time.time()
        rows = [
            (
                c.source,
                c.content_hash,
                json.dumps(sorted(c.chunk_ids)),
                c.settings_hash,
                json.dumps(sorted(c.previous_ids)),
                now,
            )
            for c in changes
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO sources (source, content_hash, chunk_ids, "
                "settings_hash, state, previous_ids, updated_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                rows,
            )

    def finish(self, done: Iterable[str] = (), removed: Iterable[str] = ()) -> None:
        """Mark sources done and drop removed ones, in one transaction."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE sources SET state = 'done', previous_ids = NULL WHERE source = ?",
                [(s,) for s in done],
            )
            db.executemany("DELETE FROM sources WHERE source = ?", [(s,) for s in removed])

    def put(self, entries: Iterable[RecordEntry]) -> None:
        """Write entries as they are (state ``done``), in one transaction."""
        now = time.time()
        rows = [
            (e.source, e.content_hash, json.dumps(sorted(e.chunk_ids)), e.settings_hash, now)
            for e in entries
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO sources (source, content_hash, chunk_ids, "
                "settings_hash, state, previous_ids, updated_at) "
                "VALUES (?, ?, ?, ?, 'done', NULL, ?)",
                rows,
            )

    def close(self) -> None:
        """Close the SQLite file; every write is already committed."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> IndexRecord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"IndexRecord(path={self.path})"

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(
                        f"Could not write the index record {self.path}: {exc}"
                    ) from exc
                raise


_SELECT = "SELECT source, content_hash, chunk_ids, settings_hash, state, previous_ids FROM sources"


def _entry(row: tuple[Any, ...]) -> RecordEntry:
    source, content_hash, chunk_ids, settings, state, previous = row
    return RecordEntry(
        source=source,
        content_hash=content_hash,
        chunk_ids=tuple(json.loads(chunk_ids)),
        settings_hash=settings,
        state=state,
        previous_ids=tuple(json.loads(previous)) if previous else (),
    )
