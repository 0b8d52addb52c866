"""BM25 in SQL over a kb's ``terms`` table: the same scores as :class:`KeywordIndex`.

The query is tokenized in Python with the same :class:`~ragkit.retrieval.tokenize.Tokenizer`
that wrote the terms; the database scores. Units are chunks, or whole documents
(``scope``, as in :mod:`ragkit.retrieval.scope`): a document is scored whole when
``n_chunks <= max_document_chunks``. The arithmetic follows ``_bm25.py`` step by step,
with the same roundings: ``idf = log(1 + (N - df + 0.5) / (df + 0.5))`` rounded to
float4, each term's weight ``idf * tf / (k1 * ((1 - b) + b * length / avgdl) + tf)``
rounded to float4, and a chunk's score their float4 sum in query order (``sum`` of
``real`` adds in float4), so scores and ties are those of the local index.
"""

from __future__ import annotations

import logging
from typing import Any

from ragkit.backends.postgres._db import Database
from ragkit.backends.postgres._fields import where
from ragkit.errors import ConfigurationError
from ragkit.protocols import Filters
from ragkit.retrieval.scope import MAX_DOCUMENT_CHUNKS, SCOPES
from ragkit.retrieval.tokenize import Tokenizer
from ragkit.stores.codec import chunk_from_json
from ragkit.stores.filters import parse_filters
from ragkit.types import ScoredChunk

__all__ = ["PostgresBM25Retriever"]

logger = logging.getLogger(__name__)

_ALL = 2**31 - 1  # "document" scope: every document is short enough to score whole

# %(m)s: the largest document scored whole (0: none, "chunk" scope). A unit is a
# document scored whole or a chunk; ``u`` sums a term's frequency per unit (one
# index-only scan of the query terms' postings), ``ui`` adds the term's IDF over units,
# ``w`` the unit's score in query order. {tie}: the tie-break key of a hit.
_BM25 = """
WITH q AS (SELECT term, pos FROM unnest(%(terms)s::text[]) WITH ORDINALITY AS x(term, pos)),
stats AS (
    SELECT coalesce(sum(CASE WHEN n_chunks <= %(m)s THEN documents
                        ELSE n_chunks::bigint * documents END), 0)::float8 AS n,
           coalesce(sum(length), 0)::float8 AS total,
           coalesce(bool_or(n_chunks BETWEEN 2 AND %(m)s), false) AS shared
    FROM {s}.sizes
),
u AS (
    SELECT t.term, CASE WHEN d.n_chunks <= %(m)s THEN t.document_id ELSE t.chunk_id END AS unit,
           bool_or(d.n_chunks <= %(m)s) AS whole,
           sum(t.tf)::float8 AS tf,
           max(CASE WHEN d.n_chunks <= %(m)s THEN d.length ELSE t.length END)::float8 AS len
    FROM {s}.terms t JOIN {s}.documents d USING (document_id)
    WHERE t.term = ANY(%(terms)s::text[])
    GROUP BY 1, 2
),
ui AS (
    SELECT u.*, ln(1 + (s.n - count(*) OVER (PARTITION BY term) + 0.5)
                / (count(*) OVER (PARTITION BY term) + 0.5))::float4::float8 AS idf
    FROM u, stats s
),
w AS (
    SELECT ui.whole, ui.unit,
           sum((ui.idf * (ui.tf / (%(k1)s * (%(one_minus_b)s + %(b)s * ui.len
               / (CASE WHEN s.total = 0 THEN 1.0 ELSE s.total / s.n END)) + ui.tf)))::float4
               ORDER BY q.pos) AS score
    FROM ui JOIN q USING (term), stats s
    GROUP BY ui.whole, ui.unit
),
top AS (SELECT * FROM w WHERE score > 0 AND {cut}),
hits AS (
    SELECT c.id, c.chunk, c.fields, w.score FROM top w JOIN {s}.chunks c ON c.document_id = w.unit
    WHERE w.whole
    UNION ALL
    SELECT c.id, c.chunk, c.fields, w.score FROM top w JOIN {s}.chunks c ON c.id = w.unit
    WHERE NOT w.whole
),
own AS ({own})
SELECT h.id, h.chunk, h.score FROM hits h LEFT JOIN own o ON o.chunk_id = h.id, stats s
WHERE h.score > 0 AND {where}
ORDER BY h.score DESC, CASE WHEN s.shared THEN {tie} ELSE 0 END DESC, h.id
LIMIT %(k)s
"""

# The query terms a hit holds (the tie-break): looked up for each hit when the cut leaves
# a few dozen (``own`` empty), summed for every chunk at once when a filter leaves every
# unit in.
_TIE_EACH = (
    "(SELECT coalesce(sum(o.tf), 0) FROM {s}.terms o "
    "WHERE o.chunk_id = h.id AND o.term = ANY(%(terms)s::text[]))"
)
_OWN_NONE = "SELECT NULL::text AS chunk_id, NULL::bigint AS own WHERE FALSE"
_OWN_ALL = (
    "SELECT chunk_id, sum(tf) AS own FROM {s}.terms WHERE term = ANY(%(terms)s::text[]) "
    "GROUP BY chunk_id"
)

# Without filters, only units scoring at least the k-th best unit can hold a top-k chunk
# (every unit stands for one chunk or more, each with the unit's score), so the chunk
# rows are read for those alone, ties at the cut included, instead of for every unit
# that shares a term with the query (on SciFact 10,000 chunk rows per query for 50 hits).
_CUT = (
    "score >= (SELECT coalesce(min(score), 0) FROM "
    "(SELECT score FROM w WHERE score > 0 ORDER BY score DESC LIMIT %(k)s) best)"
)


class PostgresBM25Retriever:
    """Top-k chunks by BM25, scored in PostgreSQL (see the module docstring).

    Of equal scores, when some documents are scored whole, the chunk holding more of
    the query's terms comes first, then the lower id; filters apply before the cut.

    Example:
        >>> retriever = backend.retriever("keyword", embedder)  # doctest: +SKIP
        >>> retriever.retrieve("connection pool size", k=5)  # doctest: +SKIP

    Args:
        db: the kb's database.
        tokenizer: the tokenizer that wrote the kb's terms.
        scope: ``"auto"``, ``"chunk"`` or ``"document"``.
        k1, b: BM25's term-frequency saturation and length normalization.
        max_document_chunks: the ``"auto"`` threshold.
    """

    def __init__(
        self,
        db: Database,
        tokenizer: Tokenizer,
        *,
        scope: str = "auto",
        k1: float = 1.2,
        b: float = 0.75,
        max_document_chunks: int = MAX_DOCUMENT_CHUNKS,
    ) -> None:
        if scope not in SCOPES:
            raise ConfigurationError(
                f"unknown keyword_scope {scope!r}; use one of {', '.join(SCOPES)}"
            )
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigurationError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self._db = db
        self.tokenizer = tokenizer
        self.scope = scope
        self.k1, self.b = k1, b
        whole = {"auto": max_document_chunks, "chunk": 0, "document": _ALL}
        self._whole = whole[scope]

    def retrieve(self, query: str, k: int = 4, filters: Filters | None = None) -> list[ScoredChunk]:
        statement = self.statement(query, k, filters)
        if statement is None:
            return []
        sql, named = statement
        with self._db.read("keyword search") as cur:
            cur.execute(sql, named)
            rows = cur.fetchall()
        hits = [ScoredChunk(chunk_from_json(text), float(score)) for _, text, score in rows]
        logger.debug("keyword retrieve %r k=%d -> %d hits", query, k, len(hits))
        return hits

    def statement(
        self, query: str, k: int, filters: Filters | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        """The SQL and named parameters of :meth:`retrieve` (for ``EXPLAIN``); None when
        nothing can match (``k <= 0`` or no terms)."""
        clause, params = where(parse_filters(filters), "h.fields")
        terms = self.tokenizer.tokenize(query)
        if k <= 0 or not terms:
            return None
        named: dict[str, Any] = {
            "terms": terms,
            "m": self._whole,
            "k1": float(self.k1),
            "b": float(self.b),
            "one_minus_b": float(1 - self.b),
            "k": k,
        }
        # The filter's %s parameters become named ones, after the query's own.
        for i, value in enumerate(params):
            named[f"f{i}"] = value
        # A filter can drop the best units' chunks: then every unit goes on to the filter.
        if clause == "TRUE":
            cut, own, tie = _CUT, _OWN_NONE, _TIE_EACH
        else:
            cut, own, tie = "TRUE", _OWN_ALL, "coalesce(o.own, 0)"
        schema = self._db.schema
        sql = _BM25.format(
            s=schema,
            where=_named(clause, len(params)),
            cut=cut,
            own=own.format(s=schema),
            tie=tie.format(s=schema),
        )
        return sql, named

    def __repr__(self) -> str:
        return f"PostgresBM25Retriever({self._db.location!r}, scope={self.scope!r})"


def _named(clause: str, n: int) -> str:
    """``clause`` with its ``%s`` placeholders as ``%(f0)s``, ``%(f1)s``, ..."""
    parts = clause.split("%s")
    assert len(parts) == n + 1
    out = [parts[0]]
    for i, part in enumerate(parts[1:]):
        out += [f"%(f{i})s", part]
    return "".join(out)
