"""The keyword top-k cut and the chunks read from disk, against a plain full sort."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragkit.errors import StoreError
from ragkit.retrieval import KeywordIndex, Tokenizer
from ragkit.retrieval._keyword_fields import FieldColumns
from ragkit.retrieval._keyword_rank import candidates
from ragkit.stores.filters import matches, parse_filters
from ragkit.testing.store_contract import make_chunk
from ragkit.types import Chunk, ScoredChunk

PLAIN = Tokenizer(stemmer=None, stopwords=())
WORDS = ["ant", "bee", "cat", "dog", "eel", "fox"]  # few words: many equal scores
FILTERS: list[dict[str, Any] | None] = [None, {"n": 1}, {"n": {"$in": [0, 2]}}, {"n": 9}]


def corpus(seed: int) -> list[Chunk]:
    rng = random.Random(seed)
    chunks = []
    for i in range(rng.randint(5, 60)):
        words = rng.choices(WORDS[: rng.randint(2, 6)], k=rng.randint(1, 6))
        chunks.append(
            make_chunk(
                f"c{rng.randint(0, 10**6):07d}",
                " ".join(words),
                source=f"d{rng.randint(0, 9)}.md",  # documents of 1 to ~10 chunks
                metadata={"n": i % 3},
            )
        )
    return chunks


def reference(
    index: KeywordIndex, chunks: list[Chunk], query: str, k: int, filters: dict[str, Any] | None
) -> list[tuple[str, float]]:
    """Every scored chunk, filtered in Python and fully sorted, then cut to ``k``."""
    scores = {h.chunk.id: h.score for h in index.search(query, len(chunks) + 1)}
    latest = {c.id: c for c in chunks}
    wanted = set(query.split())
    sizes = [sum(c.source == s for c in latest.values()) for s in {c.source for c in chunks}]
    limit = len(chunks) if index.scope == "document" else index.max_document_chunks
    shared = index.scope != "chunk" and any(1 < n <= limit for n in sizes)

    def ok(chunk: Chunk) -> bool:
        if filters is None:
            return True
        want = filters["n"]
        n = chunk.metadata["n"]
        return n in want["$in"] if isinstance(want, dict) else n == want

    def key(i: str) -> tuple[float, int, str]:
        # occurrences of the query's words (each counted once in the query) in the chunk
        own = sum(w in wanted for w in latest[i].text.split()) if shared else 0
        return (-scores[i], -own, i)

    ranked = sorted((i for i in scores if ok(latest[i])), key=key)
    return [(i, scores[i]) for i in ranked[:k]]


def pairs(hits: list[ScoredChunk]) -> list[tuple[str, float]]:
    return [(h.chunk.id, h.score) for h in hits]


@pytest.mark.parametrize("scope", ["chunk", "auto", "document"])
def test_top_k_matches_a_full_sort_on_random_corpora(scope: Any) -> None:
    rng = random.Random(7)
    for seed in range(25):
        chunks = corpus(seed)
        index = KeywordIndex(tokenizer=PLAIN, context=(), scope=scope, max_document_chunks=3)
        index.upsert(chunks)
        for _ in range(8):
            query = " ".join(rng.choices(WORDS, k=rng.randint(1, 3)))
            for k in (1, 3, 10, 100):
                for filters in FILTERS:
                    expected = reference(index, chunks, query, k, filters)
                    assert pairs(index.search(query, k, filters)) == expected, (seed, query, k)


def test_candidates_keep_every_tie_at_the_cut_and_test_filters_best_first() -> None:
    scores = np.array([0.0, 3.0, 1.0, 2.0, 2.0, 2.0, 1.0, 5.0], np.float32)
    hits = np.flatnonzero(scores > 0)
    assert sorted(candidates(scores, hits, 2).tolist()) == [1, 7]
    assert sorted(candidates(scores, hits, 3).tolist()) == [1, 3, 4, 5, 7]  # 2.0 ties
    assert sorted(candidates(scores, hits, 50).tolist()) == hits.tolist()


def test_field_columns_agree_with_matches() -> None:
    rng = random.Random(3)
    values: list[Any] = [1, 1.0, True, False, 0, 2.5, "a", "b", "1"]
    rows = []
    for _ in range(300):
        fields = {key: rng.choice(values) for key in ("x", "y") if rng.random() < 0.8}
        rows.append(fields)
    columns = FieldColumns(len(rows), enumerate(rows))
    positions = np.arange(len(rows))
    cases: list[dict[str, Any]] = [
        {"x": 1}, {"x": True}, {"x": "1"}, {"x": {"$ne": 1}}, {"y": {"$gte": 1}},
        {"x": {"$in": [0, 2.5]}, "y": {"$nin": ["a", "b"]}}, {"z": {"$ne": 3}}, {"z": 3},
        {"x": {"$in": [1.0, 2.5]}}, {"x": {"$in": [True]}}, {"x": {"$nin": ["1", "a"]}},
        {"y": {"$nin": [1]}}, {"z": {"$in": [1]}}, {"z": {"$nin": [1]}},
    ]  # fmt: skip
    for filters in cases:
        conditions = parse_filters(filters)
        expected = [matches(conditions, fields) for fields in rows]
        assert columns.mask(conditions, positions).tolist() == expected, filters


def test_a_saved_index_reads_chunks_from_disk_for_the_hits(tmp_path: Path) -> None:
    chunks = [
        make_chunk(f"c{i}", f"pool {'size ' * i}", source=f"s{i}.md", metadata={"n": i})
        for i in range(6)
    ]
    index = KeywordIndex(tmp_path, tokenizer=PLAIN, scope="chunk")
    index.upsert(chunks)
    memory = KeywordIndex(tokenizer=PLAIN, scope="chunk")
    memory.upsert(chunks)
    for filters in (None, {"n": {"$gte": 3}}):
        hits = index.search("pool size", 3, filters)
        assert hits == memory.search("pool size", 3, filters)
        assert [h.chunk for h in hits] == [chunks[int(h.chunk.id[1:])] for h in hits]
    assert index.ids({"n": {"$lt": 2}}) == ["c0", "c1"]
    index.delete(["c5"])
    assert [h.chunk.id for h in index.search("size", 2)] == ["c4", "c3"]
    index.close()
    with pytest.raises(StoreError, match="closed"):
        index.search("pool", 1)
