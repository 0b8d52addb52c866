"""The SQLite file behind a saved :class:`~ragkit.retrieval.KeywordIndex`.

One row per chunk: its id, its JSON and its terms (space-separated, so a change of
tokenizer is detected and nothing is pickled). The index keeps only what scoring
needs in memory and reads chunk rows from here for the hits it returns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigurationError, StoreError
from ragkit.stores.codec import chunk_from_json, chunk_to_json
from ragkit.types import Chunk

__all__ = ["DB_FILE", "KeywordDB", "MemoryChunks"]

DB_FILE = "keyword.sqlite"
_FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (id TEXT PRIMARY KEY, chunk TEXT NOT NULL, terms TEXT NOT NULL);
"""
_BATCH = 500  # ids per SELECT ... IN (...), under SQLite's 999-parameter limit


class KeywordDB:
    """``folder/keyword.sqlite``, opened (and created) with term settings ``settings``.

    Attributes:
        stale: the saved terms were made with other settings and must be recomputed.
    """

    def __init__(self, folder: Path, settings: str) -> None:
        if folder.exists() and not folder.is_dir():
            raise ConfigurationError(f"KeywordIndex path {folder} is a file, not a folder.")
        self.target = folder / DB_FILE
        try:
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.target), check_same_thread=False)
            db.executescript(_SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            empty = db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is None
        except sqlite3.Error as exc:
            raise StoreError(
                f"Could not open the keyword index {self.target} ({exc}); delete {folder} "
                "and it is rebuilt from the vector store when the knowledge base opens."
            ) from exc
        if meta.get("format", str(_FORMAT)) != str(_FORMAT):
            db.close()
            raise StoreError(f"{self.target} has format {meta['format']}, expected {_FORMAT}.")
        self._db: sqlite3.Connection | None = db
        self.stale = not empty and meta.get("terms") != settings
        self.settings = settings

    def mark_current(self) -> None:
        """Record that the saved terms follow this file's settings."""
        self.write(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("format", str(_FORMAT)), ("terms", self.settings)],
        )

    def put(self, rows: Sequence[tuple[Chunk, list[str]]]) -> None:
        """Save chunks with their terms, replacing any of the same id."""
        self.write(
            "INSERT OR REPLACE INTO chunks (id, chunk, terms) VALUES (?, ?, ?)",
            [(c.id, chunk_to_json(c), " ".join(t)) for c, t in rows],
        )

    def delete(self, ids: Sequence[str]) -> None:
        self.write("DELETE FROM chunks WHERE id = ?", [(i,) for i in ids])

    def read(self, ids: Sequence[str]) -> list[Chunk]:
        """The chunks of ``ids`` (all saved), in that order."""
        found = self.fetch(ids)
        return [chunk_from_json(found[i]) for i in ids]

    def every(self) -> Iterator[Chunk]:
        """Every saved chunk, decoded one at a time."""
        for _, text in self.chunks():
            yield chunk_from_json(text)

    def rows(self) -> Iterator[tuple[str, str, str]]:
        """``(id, document id, terms)`` of every saved chunk, in insertion order."""
        yield from self._stream(
            "SELECT id, json_extract(chunk, '$.document_id'), terms FROM chunks ORDER BY rowid"
        )

    def chunks(self) -> Iterator[tuple[str, str]]:
        """``(id, chunk JSON)`` of every saved chunk, in insertion order."""
        yield from self._stream("SELECT id, chunk FROM chunks ORDER BY rowid")

    def fetch(self, ids: Sequence[str]) -> dict[str, str]:
        """Chunk JSON by id, for the ``ids`` that are saved."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), _BATCH):
            part = ids[start : start + _BATCH]
            marks = ",".join("?" * len(part))
            found.update(self._query(f"SELECT id, chunk FROM chunks WHERE id IN ({marks})", part))
        return found

    def write(self, sql: str, rows: list[tuple[str, ...]]) -> None:
        if not rows:
            return
        try:
            with self._connection() as db:
                db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"Could not write the keyword index in {self.target}: {exc}") from exc

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"The keyword index {self.target} is closed; open it again.")
        return self._db

    def _stream(self, sql: str) -> Iterator[Any]:
        """The rows of ``sql``, a thousand at a time, so that no table is held whole."""
        try:
            cursor = self._connection().execute(sql)
            while rows := cursor.fetchmany(1000):
                yield from rows
        except sqlite3.Error as exc:
            raise StoreError(f"Could not read the keyword index {self.target}: {exc}") from exc

    def _query(self, sql: str, params: Sequence[str] = ()) -> list[Any]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"Could not read the keyword index {self.target}: {exc}") from exc


class MemoryChunks:
    """The chunks of an index without a folder, with :class:`KeywordDB`'s methods."""

    def __init__(self) -> None:
        self._chunks: dict[str, Chunk] = {}

    def put(self, rows: Sequence[tuple[Chunk, list[str]]]) -> None:
        self._chunks.update((c.id, c) for c, _ in rows)

    def delete(self, ids: Sequence[str]) -> None:
        for i in ids:
            del self._chunks[i]

    def read(self, ids: Sequence[str]) -> list[Chunk]:
        return [self._chunks[i] for i in ids]

    def every(self) -> Iterator[Chunk]:
        yield from self._chunks.values()

    def close(self) -> None:
        pass
