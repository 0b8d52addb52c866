"""Top-k over Milvus's candidates: filters checked in Python, more asked for when needed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ragkit.backends.milvus._client import MAX_LIMIT
from ragkit.stores.codec import chunk_from_json, flat_fields
from ragkit.stores.filters import Condition, matches
from ragkit.types import ScoredChunk

__all__ = ["Fetch", "Row", "rows_of", "top_k"]

#: (id, score, chunk JSON), best first.
Row = tuple[str, float, str]
#: Milvus's ``limit`` best rows.
Fetch = Callable[[int], list[Row]]


def rows_of(result: Any, *, bm25: bool = False) -> list[Row]:
    rows = list(result[0]) if result else []
    # BM25 scores are never negative; Milvus Lite reports them negated (best first).
    return [
        (r["id"], abs(float(r["distance"])) if bm25 else float(r["distance"]), r["entity"]["chunk"])
        for r in rows
    ]


def top_k(fetch: Fetch, k: int, conditions: tuple[Condition, ...]) -> list[ScoredChunk]:
    """The ``k`` best hits that match ``conditions``, best first, ties in order of id.

    ``fetch(limit)`` returns Milvus's ``limit`` best rows (a superset of the matches,
    best first). Any match beyond them scores at most the last row's score, so the
    ``k``-th hit is final once it scores above that, or when Milvus had no more rows;
    otherwise (too few matched, or a tie at the cut) more rows are asked for.
    """
    limit = min(k + 1, MAX_LIMIT)
    while True:
        rows = fetch(limit)
        hits = []
        for chunk_id, score, text in rows:
            chunk = chunk_from_json(text)
            if not conditions or matches(conditions, flat_fields(chunk)):
                hits.append((chunk_id, score, chunk))
        hits.sort(key=lambda h: (-h[1], h[0]))
        exhausted = len(rows) < limit or limit >= MAX_LIMIT
        if exhausted or (len(hits) >= k and hits[k - 1][1] > rows[-1][1]):
            return [ScoredChunk(chunk=c, score=s) for _, s, c in hits[:k]]
        limit = min(2 * limit, MAX_LIMIT)
