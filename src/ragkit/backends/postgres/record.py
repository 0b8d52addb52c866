"""The record of indexed sources in PostgreSQL: read here, written inside a Batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from ragkit.backends.base import Change, RecordEntry
from ragkit.backends.postgres._db import Database

__all__ = ["PostgresRecord", "begin", "finish", "put"]

_SELECT = (
    "SELECT source, content_hash, chunk_ids, settings_hash, state, previous_ids FROM {s}.record"
)


class PostgresRecord:
    """The :class:`~ragkit.backends.base.Record` of a kb in PostgreSQL (its ``record``
    table). Writes go through :meth:`PostgresBackend.write`, in the batch's transaction.
    Reads inside ``backend.reading()`` see that block's snapshot."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._select = _SELECT.format(s=db.schema)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._db.read("reading the record") as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def get(self, source: str) -> RecordEntry | None:
        rows = self._rows(self._select + " WHERE source = %s", (source,))
        return _entry(rows[0]) if rows else None

    def entries(self) -> dict[str, RecordEntry]:
        return {row[0]: _entry(row) for row in self._rows(self._select + " ORDER BY source")}

    def sources(self) -> list[str]:
        rows = self._rows(f"SELECT source FROM {self._db.schema}.record ORDER BY source")
        return [row[0] for row in rows]

    def pending(self) -> list[RecordEntry]:
        rows = self._rows(self._select + " WHERE state = 'pending' ORDER BY source")
        return [_entry(row) for row in rows]

    def chunk_total(self) -> int:
        rows = self._rows(
            f"SELECT coalesce(sum(cardinality(chunk_ids)), 0) FROM {self._db.schema}.record"
        )
        return int(rows[0][0])

    def count(self) -> int:
        return int(self._rows(f"SELECT count(*) FROM {self._db.schema}.record")[0][0])

    def __repr__(self) -> str:
        return f"PostgresRecord({self._db.location!r})"


def _entry(row: tuple[Any, ...]) -> RecordEntry:
    source, content_hash, chunk_ids, settings, state, previous = row
    return RecordEntry(
        source=source,
        content_hash=content_hash,
        chunk_ids=tuple(chunk_ids),
        settings_hash=settings,
        state=state,
        previous_ids=tuple(previous or ()),
    )


def begin(cur: psycopg.Cursor[Any], schema: str, changes: Sequence[Change]) -> None:
    """Mark sources pending with their target and previous chunk ids."""
    _write(
        cur,
        schema,
        "pending",
        [
            (c.source, c.content_hash, sorted(c.chunk_ids), c.settings_hash, sorted(c.previous_ids))
            for c in changes
        ],
    )


def put(cur: psycopg.Cursor[Any], schema: str, entries: Sequence[RecordEntry]) -> None:
    """Write entries as they are, state ``done``."""
    _write(
        cur,
        schema,
        "done",
        [(e.source, e.content_hash, sorted(e.chunk_ids), e.settings_hash, None) for e in entries],
    )


def _write(
    cur: psycopg.Cursor[Any],
    schema: str,
    state: str,
    rows: list[tuple[str, str, list[str], str, list[str] | None]],
) -> None:
    if not rows:
        return
    last = {row[0]: row for row in rows}  # a source twice in one call: the last wins
    cur.executemany(
        f"INSERT INTO {schema}.record (source, content_hash, chunk_ids, settings_hash, state, "
        "previous_ids, updated_at) VALUES (%s, %s, %s, %s, %s, %s, now()) "
        "ON CONFLICT (source) DO UPDATE SET content_hash = excluded.content_hash, "
        "chunk_ids = excluded.chunk_ids, settings_hash = excluded.settings_hash, "
        "state = excluded.state, previous_ids = excluded.previous_ids, updated_at = now()",
        [(s, h, ids, sh, state, prev) for s, h, ids, sh, prev in last.values()],
    )


def finish(
    cur: psycopg.Cursor[Any], schema: str, done: Sequence[str], removed: Sequence[str]
) -> None:
    """Mark pending sources done and drop removed ones."""
    if done:
        cur.execute(
            f"UPDATE {schema}.record SET state = 'done', previous_ids = NULL, updated_at = now() "
            "WHERE source = ANY(%s)",
            (list(done),),
        )
    if removed:
        cur.execute(f"DELETE FROM {schema}.record WHERE source = ANY(%s)", (list(removed),))
