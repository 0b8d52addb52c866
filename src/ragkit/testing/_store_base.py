"""The base of the store contract and its first test groups: reads and writes, search.

See :mod:`ragkit.testing.store_contract` for how to use the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest
from numpy.typing import NDArray

from ragkit.protocols import VectorStore
from ragkit.testing._store_data import TOL, make_chunk, rich_chunks, unit_vectors
from ragkit.types import Chunk

__all__ = ["BasicsTests", "SearchTests", "StoreContractBase"]


class StoreContractBase:
    """The settings and helpers every test group of the contract uses."""

    dimension: ClassVar[int] = 16
    large_batch: ClassVar[int] = 6000

    def vectors(self, n: int, seed: int = 0) -> NDArray[np.float32]:
        return unit_vectors(n, self.dimension, seed)

    def fill(
        self, store: VectorStore, chunks: Sequence[Chunk], seed: int = 0
    ) -> NDArray[np.float32]:
        vectors = self.vectors(len(chunks), seed)
        store.upsert(chunks, vectors)
        return vectors


class BasicsTests(StoreContractBase):
    """Writes and reads: upsert, get, count, ids, delete."""

    def test_empty_store(self, store: VectorStore) -> None:
        assert store.count() == 0
        assert store.ids() == []
        assert store.get(["nope"]) == []
        assert store.search(self.vectors(1)[0], k=5) == []

    def test_upsert_then_get_returns_equal_chunks(self, store: VectorStore) -> None:
        chunks = rich_chunks()
        self.fill(store, chunks)
        assert store.get([c.id for c in chunks]) == chunks
        assert store.get([c.id for c in reversed(chunks)]) == chunks[::-1]
        assert store.get(["unknown", chunks[1].id]) == [chunks[1]]
        assert store.get([]) == []

    def test_search_returns_the_stored_chunks(self, store: VectorStore) -> None:
        chunks = rich_chunks()
        vectors = self.fill(store, chunks)
        for chunk, vector in zip(chunks, vectors, strict=True):
            best = store.search(vector, k=1)
            assert best[0].chunk == chunk
            assert best[0].score == pytest.approx(1.0, abs=TOL)

    def test_count_and_ids_follow_writes(self, store: VectorStore) -> None:
        chunks = [make_chunk(f"c{i}") for i in range(7)]
        self.fill(store, chunks)
        assert store.count() == 7
        assert sorted(store.ids()) == sorted(c.id for c in chunks)
        store.delete(["c1", "c3"])
        assert store.count() == 5
        assert sorted(store.ids()) == ["c0", "c2", "c4", "c5", "c6"]

    def test_upsert_replaces_existing_ids(self, store: VectorStore) -> None:
        vectors = self.fill(store, [make_chunk(f"c{i}") for i in range(5)])
        new = make_chunk("c2", "Replaced text.", metadata={"version": 2})
        new_vector = self.vectors(1, seed=99)
        store.upsert([new], new_vector)
        assert store.count() == 5
        assert store.get(["c2"]) == [new]
        hit = store.search(new_vector[0], k=1)[0]
        assert hit.chunk == new
        assert hit.score == pytest.approx(1.0, abs=TOL)
        old = [h for h in store.search(vectors[2], k=5) if h.chunk.id == "c2"]
        assert old[0].score == pytest.approx(float(vectors[2] @ new_vector[0]), abs=TOL)

    def test_repeated_id_in_one_batch_last_wins(self, store: VectorStore) -> None:
        first, last = make_chunk("dup", "first"), make_chunk("dup", "last")
        vectors = self.vectors(2)
        store.upsert([first, last], vectors)
        assert store.count() == 1
        assert store.get(["dup"]) == [last]
        assert store.search(vectors[1], k=1)[0].score == pytest.approx(1.0, abs=TOL)

    def test_delete_ignores_unknown_ids(self, store: VectorStore) -> None:
        self.fill(store, [make_chunk("a"), make_chunk("b")])
        store.delete(["a", "never-stored"])
        store.delete([])
        assert store.ids() == ["b"]
        assert store.get(["a"]) == []
        assert all(h.chunk.id != "a" for h in store.search(self.vectors(1)[0], k=10))

    def test_empty_upsert_is_a_no_op(self, store: VectorStore) -> None:
        store.upsert([], np.zeros((0, self.dimension), dtype=np.float32))
        assert store.count() == 0


class SearchTests(StoreContractBase):
    """Search: cosine scores, ranking, ``k`` at its edges, ties broken by id."""

    def test_search_matches_brute_force_cosine(self, store: VectorStore) -> None:
        chunks = [make_chunk(f"c{i:03d}") for i in range(300)]
        vectors = self.fill(store, chunks, seed=1)
        for query in self.vectors(5, seed=2):
            expected = np.argsort(-(vectors @ query), kind="stable")[:10]
            hits = store.search(query, k=10)
            assert [h.chunk.id for h in hits] == [chunks[i].id for i in expected]
            for hit, i in zip(hits, expected, strict=True):
                assert hit.score == pytest.approx(float(vectors[i] @ query), abs=TOL)

    def test_scores_are_cosine_similarities(self, store: VectorStore) -> None:
        e0, e1 = np.eye(self.dimension, dtype=np.float32)[:2]
        rows = np.stack([e0, -e0, e1, (e0 + e1) / np.sqrt(2)]).astype(np.float32)
        store.upsert([make_chunk(i) for i in ("same", "opposite", "orthogonal", "diagonal")], rows)
        hits = store.search(e0, k=4)
        assert [h.chunk.id for h in hits] == ["same", "diagonal", "orthogonal", "opposite"]
        expected = [1.0, np.sqrt(0.5), 0.0, -1.0]
        assert [h.score for h in hits] == pytest.approx(expected, abs=TOL)

    def test_k_edge_cases(self, store: VectorStore) -> None:
        vectors = self.fill(store, [make_chunk(f"c{i}") for i in range(20)])
        assert store.search(vectors[0], k=0) == []
        assert store.search(vectors[0], k=-3) == []
        everything = store.search(vectors[0], k=1000)
        assert sorted(h.chunk.id for h in everything) == sorted(f"c{i}" for i in range(20))
        scores = [h.score for h in everything]
        assert scores == sorted(scores, reverse=True)
        assert len(store.search(vectors[0], k=1000, filters={"source": "doc.md"})) == 20

    def test_equal_scores_are_ordered_by_id(self, store: VectorStore) -> None:
        same = self.vectors(1, seed=5)
        names = ["f", "b", "d", "a", "e", "c"]
        store.upsert([make_chunk(n) for n in names], np.repeat(same, len(names), axis=0))
        self.fill(store, [make_chunk(f"other{i}") for i in range(30)], seed=6)
        assert [h.chunk.id for h in store.search(same[0], k=3)] == ["a", "b", "c"]
        assert [h.chunk.id for h in store.search(same[0], k=6)] == sorted(names)
