"""Automatic BM25 scope on real long documents (../shared/docs/markdown, the httpx docs).

The default ``scope="auto"`` scores a document of at most 7 chunks as a whole; these
tests check that it leaves long documents to chunk-level ranking.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ragkit.chunking import RecursiveChunker
from ragkit.loaders import AutoLoader
from ragkit.retrieval import KeywordIndex
from ragkit.retrieval.scope import MAX_DOCUMENT_CHUNKS
from ragkit.types import Chunk

pytestmark = pytest.mark.integration

QUERIES = (
    "timeout configuration",
    "connection pool limits",
    "HTTP/2 support",
    "proxy environment variables",
    "streaming responses",
    "authentication with digest",
    "event hooks",
    "ssl certificate verification",
)


@pytest.fixture(scope="module")
def chunks(shared: Path) -> list[Chunk]:
    loader, chunker = AutoLoader(), RecursiveChunker()
    files = sorted((shared / "docs" / "markdown").rglob("*.md"))
    return [c for f in files for d in loader.load(f) for c in chunker.split(d)]


def _long(chunks: list[Chunk]) -> set[str]:
    sizes = Counter(c.document_id for c in chunks)
    return {d for d, n in sizes.items() if n > MAX_DOCUMENT_CHUNKS}


def test_long_documents_alone_are_ranked_exactly_as_chunks(chunks: list[Chunk]) -> None:
    long = _long(chunks)
    assert len(long) >= 5, "the httpx docs should hold several long pages"
    pages = [c for c in chunks if c.document_id in long]
    auto, by_chunk = KeywordIndex(), KeywordIndex(scope="chunk")
    auto.upsert(pages)
    by_chunk.upsert(pages)
    for query in QUERIES:
        assert auto.search(query, 100) == by_chunk.search(query, 100)


def test_long_documents_keep_their_chunk_ranking_among_short_ones(chunks: list[Chunk]) -> None:
    long = _long(chunks)
    short = {c.document_id for c in chunks} - long
    assert short, "the httpx docs should also hold short pages"
    auto, by_chunk = KeywordIndex(), KeywordIndex(scope="chunk")
    auto.upsert(chunks)
    by_chunk.upsert(chunks)
    pairs = same_top = 0
    for query in QUERIES:
        got, reference = auto.search(query, 500), by_chunk.search(query, 500)
        for document in long:
            mine = [h for h in got if h.chunk.document_id == document]
            theirs = [h for h in reference if h.chunk.document_id == document]
            # The same chunks match (each scored on its own text, not tied to its page)...
            assert {h.chunk.id for h in mine} == {h.chunk.id for h in theirs}
            assert len({h.score for h in mine}) > 1 or len(mine) <= 1
            pairs += bool(mine)
            same_top += bool(mine) and mine[0].chunk.id == theirs[0].chunk.id
        # ...while every chunk of a matching short page gets its page's score.
        for document in short:
            page = {round(h.score, 5) for h in got if h.chunk.document_id == document}
            assert len(page) <= 1
    # The statistics differ (short pages count as one unit each), so the order inside
    # a long page may differ in places; its best chunk almost never does.
    assert same_top >= 0.9 * pairs
