"""The SQLite side of :class:`~ragkit.stores.FaissStore`: schema and the queries it runs.

``rows`` holds one row per chunk: a store-wide integer id (the FAISS label, never
reused), the chunk id, its JSON and its float32 vector. ``fields`` holds the filterable
fields, one row per (chunk, key), indexed by key and value. ``meta`` holds counters.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ragkit.errors import ConfigurationError, StoreError
from ragkit.stores.codec import chunk_to_json, flat_fields
from ragkit.stores.filters import Condition, kind_of, sql_where
from ragkit.types import Chunk

__all__ = [
    "DB_FILE",
    "IN",
    "SCHEMA",
    "VECTOR",
    "as_vectors",
    "chunk_json",
    "connect",
    "delete_rows",
    "encode_rows",
    "exact_order",
    "live_ids",
    "lookup",
    "meta",
    "scored_rows",
    "select_matching",
    "vector_batches",
    "write_rows",
]

DB_FILE = "chunks.sqlite"
#: How vectors are stored: little-endian float32 bytes.
VECTOR = np.dtype("<f4")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS rows (
    int_id INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    document_id TEXT NOT NULL, json TEXT NOT NULL, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS fields (
    int_id INTEGER NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, value,
    PRIMARY KEY (int_id, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fields_key_value ON fields (key, value);
"""
#: ``WHERE x IN`` a JSON array passed as one parameter (no limit on its length).
IN = "(SELECT value FROM json_each(?))"
_SQL_OPS = {"$eq": "=", "$in": "IN", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def as_vectors(blobs: Iterable[bytes]) -> NDArray[np.float32]:
    """Stored vector blobs as one float32 matrix, a row per blob."""
    data = b"".join(blobs)
    flat: NDArray[np.float32] = np.frombuffer(data, dtype=VECTOR).astype(np.float32, copy=False)
    return flat


def live_ids(db: sqlite3.Connection) -> NDArray[np.int64]:
    """Every row id, ascending."""
    rows = db.execute("SELECT int_id FROM rows ORDER BY int_id").fetchall()
    return np.asarray([i for (i,) in rows], dtype=np.int64)


def lookup(db: sqlite3.Connection, chunk_ids: Iterable[str]) -> list[int]:
    """Row ids of the stored chunks among ``chunk_ids``."""
    rows = db.execute(
        f"SELECT int_id FROM rows WHERE chunk_id IN {IN}", (json.dumps(list(chunk_ids)),)
    ).fetchall()
    return [i for (i,) in rows]


def vector_batches(
    db: sqlite3.Connection, size: int, ids: NDArray[np.int64] | None = None
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
    """``(row ids, vectors)`` of every row (or of ``ids``), ``size`` rows at a time."""
    if ids is None:
        cursor = db.execute("SELECT int_id, vector FROM rows ORDER BY int_id")
    else:
        cursor = db.execute(
            f"SELECT int_id, vector FROM rows WHERE int_id IN {IN}", (json.dumps(ids.tolist()),)
        )
    while batch := cursor.fetchmany(size):
        labels = np.asarray([i for i, _ in batch], dtype=np.int64)
        yield labels, as_vectors(v for _, v in batch).reshape(len(batch), -1)


def meta(db: sqlite3.Connection, key: str, default: Any) -> Any:
    """The counter ``key`` of the ``meta`` table, or ``default``."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else row[0]


def select_matching(column: str, conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    """SQL selecting ``column`` of the rows that match ``conditions``, and its parameters.

    :func:`~ragkit.stores.filters.sql_where` tests every row; alone, it makes SQLite scan
    the whole table (a second per filtered search at a million chunks). When a condition
    names values (``$eq``, ``$in``, a range), the rows holding them are looked up in the
    ``fields (key, value)`` index first, and only those are tested.
    """
    where, params = sql_where(conditions)
    value: Any
    for cond in conditions:
        if cond.op in ("$ne", "$nin"):
            continue
        if isinstance(cond.value, tuple):
            test, value = f"value IN {IN}", json.dumps(list(cond.value))
        else:
            test, value = f"value {_SQL_OPS[cond.op]} ?", cond.value
        # A superset of the matches (kinds are not checked here); ``where`` decides.
        driver = f"SELECT int_id FROM fields WHERE key = ? AND {test}"
        return (
            f"SELECT r.{column} FROM rows r WHERE r.int_id IN ({driver}) AND {where}",
            [cond.field, value, *params],
        )
    return f"SELECT r.{column} FROM rows r WHERE {where}", params


def connect(folder: Path | None) -> sqlite3.Connection:
    """Open (and create) ``folder/chunks.sqlite``, or an in-memory database.

    Raises:
        ConfigurationError: ``folder`` is a file.
        StoreError: SQLite could not open it.
    """
    target = ":memory:"
    if folder is not None:
        if folder.exists() and not folder.is_dir():
            raise ConfigurationError(f"FaissStore path {folder} is a file, not a folder.")
        folder.mkdir(parents=True, exist_ok=True)
        target = str(folder / DB_FILE)
    try:
        db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        db.executescript(SCHEMA)
    except sqlite3.Error as exc:
        raise StoreError(f"Could not open {target}: {exc}") from exc
    return db


def scored_rows(
    db: sqlite3.Connection, labels: list[int], query: NDArray[np.float32]
) -> list[tuple[str, float, str]]:
    """``(chunk id, exact score, chunk JSON)`` of the rows ``labels``.

    Scores come from the stored float32 vectors, whatever precision the index keeps.
    """
    rows = db.execute(
        f"SELECT chunk_id, json, vector FROM rows WHERE int_id IN {IN}", (json.dumps(labels),)
    ).fetchall()
    scores = (as_vectors(v for _, _, v in rows).reshape(-1, len(query)) @ query).tolist()
    return [(chunk_id, s, text) for (chunk_id, text, _), s in zip(rows, scores, strict=True)]


def exact_order(
    db: sqlite3.Connection, query: NDArray[np.float32], allowed: NDArray[np.int64]
) -> list[int]:
    """``allowed`` ordered by exact score, best first (for small filtered searches)."""
    ((ids, vectors),) = vector_batches(db, len(allowed), allowed)
    order = np.argsort(-(vectors @ query), kind="stable")
    return [int(i) for i in ids[order]]


Record = tuple[Any, ...]
Field = tuple[Any, ...]


def encode_rows(
    int_ids: Sequence[int], chunks: Sequence[Chunk], vectors: NDArray[np.float32]
) -> tuple[list[Record], list[Field]]:
    """The ``rows`` and ``fields`` records of ``chunks``.

    Raises:
        ConfigurationError: a metadata value cannot be stored.
    """
    records = [
        (i, c.id, c.source, c.document_id, chunk_to_json(c), v.astype(VECTOR).tobytes())
        for i, c, v in zip(int_ids, chunks, vectors, strict=True)
    ]
    fields = [
        (i, key, kind_of(value), value)
        for i, c in zip(int_ids, chunks, strict=True)
        for key, value in flat_fields(c).items()
    ]
    return records, fields


def write_rows(
    db: sqlite3.Connection, records: list[Record], fields: list[Field], replaced: list[int]
) -> None:
    """Insert ``records`` (replacing rows of the same chunk ids) and their ``fields``."""
    db.execute(f"DELETE FROM fields WHERE int_id IN {IN}", (json.dumps(replaced),))
    db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?, ?, ?)", records)
    db.executemany("INSERT INTO fields VALUES (?, ?, ?, ?)", fields)


def delete_rows(db: sqlite3.Connection, int_ids: list[int]) -> None:
    for table in ("fields", "rows"):
        db.execute(f"DELETE FROM {table} WHERE int_id IN {IN}", (json.dumps(int_ids),))


def chunk_json(db: sqlite3.Connection, chunk_ids: Sequence[str]) -> dict[str, str]:
    """The stored JSON of each of ``chunk_ids`` found."""
    rows = db.execute(
        f"SELECT chunk_id, json FROM rows WHERE chunk_id IN {IN}",
        (json.dumps(list(dict.fromkeys(chunk_ids))),),
    )
    return dict(rows)
