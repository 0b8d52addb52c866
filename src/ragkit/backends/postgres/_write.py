"""Writing chunks: their rows, vectors and keyword terms, inside a caller's transaction.

A chunk is one row of ``chunks`` (its JSON, filterable fields, document id, number of
terms and vector) and one row of ``terms`` per distinct term; ``documents`` keeps each
document's number of chunks and terms, which BM25 over whole documents needs, and
``sizes`` the number of documents (and their terms) of each number of chunks, from which
BM25 takes its corpus totals. Rows are
sent with COPY: binary for chunks (vectors as pgvector's binary format), text for terms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg.types.json import Jsonb

from ragkit.backends.postgres._fields import fields_json
from ragkit.retrieval.scope import with_context
from ragkit.retrieval.tokenize import Tokenizer
from ragkit.stores.codec import chunk_to_json
from ragkit.types import Chunk

__all__ = ["Prepared", "Terms", "delete_chunks", "insert_chunks"]

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True)
class Terms:
    """What turns a chunk into keyword terms: the tokenizer and the metadata context keys."""

    tokenizer: Tokenizer
    context: tuple[str, ...] = ("title", "heading_path")

    def of(self, chunk: Chunk) -> list[str]:
        """The chunk's terms, its title and heading path included (as ``KeywordIndex``)."""
        return self.tokenizer.tokenize(with_context(chunk.text, chunk.metadata, self.context))


@dataclass(frozen=True)
class Prepared:
    """Chunks turned into rows, checked and encoded before any transaction starts."""

    chunks: list[tuple[str, str, int, str, str]]  # id, document id, length, fields, JSON
    vectors: NDArray[np.float32]
    terms: str  # COPY text of the term rows

    @classmethod
    def of(cls, chunks: Sequence[Chunk], vectors: NDArray[np.float32], terms: Terms) -> Prepared:
        """Raises :class:`~ragkit.errors.ConfigurationError` for metadata JSON cannot hold."""
        rows, lines = [], []
        for chunk in chunks:
            words = terms.of(chunk)
            cid, did = _copy_text(chunk.id), _copy_text(chunk.document_id)
            n = len(words)
            lines += [f"{t}\t{cid}\t{did}\t{tf}\t{n}\n" for t, tf in Counter(words).items()]
            rows.append((chunk.id, chunk.document_id, n, fields_json(chunk), chunk_to_json(chunk)))
        return cls(rows, vectors, "".join(lines))

    @property
    def ids(self) -> list[str]:
        return [row[0] for row in self.chunks]


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


def _raw(text: str) -> str:
    return text


def insert_chunks(cur: psycopg.Cursor[Any], schema: str, prepared: Prepared) -> None:
    """Insert or replace ``prepared`` chunks, their terms and document totals."""
    if not prepared.chunks:
        return
    delete_chunks(cur, schema, prepared.ids)
    copy_chunks = (
        f"COPY {schema}.chunks (id, document_id, length, fields, chunk, embedding) "
        "FROM STDIN WITH (FORMAT BINARY)"
    )
    with cur.copy(copy_chunks) as copy:
        copy.set_types(["text", "text", "int4", "jsonb", "text", "vector"])
        for (cid, did, n, fields, text), vector in zip(
            prepared.chunks, prepared.vectors, strict=True
        ):
            copy.write_row([cid, did, n, Jsonb(fields, dumps=_raw), text, vector])
    if prepared.terms:
        copy_terms = f"COPY {schema}.terms (term, chunk_id, document_id, tf, length) FROM STDIN"
        with cur.copy(copy_terms) as copy:
            copy.write(prepared.terms)
    totals: dict[str, list[int]] = {}
    for _, did, n, _, _ in prepared.chunks:
        total = totals.setdefault(did, [0, 0])
        total[0] += 1
        total[1] += n
    cur.execute(
        f"INSERT INTO {schema}.documents AS d (document_id, n_chunks, length) "
        "SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[]) "
        "ON CONFLICT (document_id) DO UPDATE SET n_chunks = d.n_chunks + excluded.n_chunks, "
        "length = d.length + excluded.length RETURNING d.document_id, d.n_chunks, d.length",
        (list(totals), [t[0] for t in totals.values()], [t[1] for t in totals.values()]),
    )
    _resize(
        cur,
        schema,
        [
            (n - totals[did][0], length - totals[did][1], n, length)
            for did, n, length in cur.fetchall()
        ],
    )


def delete_chunks(cur: psycopg.Cursor[Any], schema: str, ids: Sequence[str]) -> None:
    """Remove chunks by id with their terms, and take them off their documents' totals."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return
    cur.execute(
        f"WITH gone AS (DELETE FROM {schema}.chunks WHERE id = ANY(%s) "
        "RETURNING document_id, length), "
        "totals AS (SELECT document_id, count(*) AS n, sum(length) AS length FROM gone "
        "GROUP BY document_id) "
        f"UPDATE {schema}.documents d SET n_chunks = d.n_chunks - t.n, "
        "length = d.length - t.length FROM totals t WHERE d.document_id = t.document_id "
        "RETURNING d.document_id, d.n_chunks, d.length, t.n, t.length",
        (ids,),
    )
    rows = cur.fetchall()
    _resize(cur, schema, [(n + gone, size + lost, n, size) for _, n, size, gone, lost in rows])
    empty = [did for did, n, *_ in rows if n <= 0]
    if empty:
        cur.execute(f"DELETE FROM {schema}.documents WHERE document_id = ANY(%s)", (empty,))
    cur.execute(f"DELETE FROM {schema}.terms WHERE chunk_id = ANY(%s)", (ids,))


def _resize(
    cur: psycopg.Cursor[Any], schema: str, changes: list[tuple[int, int, int, int]]
) -> None:
    """Move documents between the ``sizes`` rows: each change is a document's (chunks,
    length) before and after; 0 chunks is no document."""
    deltas: dict[int, list[int]] = {}
    for old_n, old_length, new_n, new_length in changes:
        if old_n > 0:
            delta = deltas.setdefault(old_n, [0, 0])
            delta[0] -= 1
            delta[1] -= old_length
        if new_n > 0:
            delta = deltas.setdefault(new_n, [0, 0])
            delta[0] += 1
            delta[1] += new_length
    deltas = {n: d for n, d in deltas.items() if d != [0, 0]}
    if not deltas:
        return
    cur.execute(
        f"INSERT INTO {schema}.sizes AS z (n_chunks, documents, length) "
        "SELECT * FROM unnest(%s::int[], %s::bigint[], %s::bigint[]) "
        "ON CONFLICT (n_chunks) DO UPDATE SET documents = z.documents + excluded.documents, "
        "length = z.length + excluded.length",
        (list(deltas), [d[0] for d in deltas.values()], [d[1] for d in deltas.values()]),
    )
    cur.execute(f"DELETE FROM {schema}.sizes WHERE documents = 0")
