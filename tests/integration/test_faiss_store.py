"""FaissStore with real FAISS and SQLite on disk: the store contract plus its files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import VectorStore
from ragkit.stores import FaissStore
from ragkit.testing.store_contract import Reopen, VectorStoreContract, make_chunk, unit_vectors
from ragkit.types import Chunk

pytestmark = pytest.mark.integration


class TestFaissStore(VectorStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FaissStore]:
        with FaissStore(path=tmp_path / "faiss") as store:
            yield store

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        def reopen(old: VectorStore) -> VectorStore:
            old.close()  # type: ignore[attr-defined]
            return FaissStore(path=tmp_path / "faiss")

        return reopen


class TestInMemoryFaissStore(VectorStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[FaissStore]:
        with FaissStore() as store:
            yield store


def _filled(path: Path, n: int = 10) -> FaissStore:
    store = FaissStore(path=path)
    store.upsert([make_chunk(f"c{i}") for i in range(n)], unit_vectors(n, 8))
    return store


def test_files_are_a_faiss_index_and_sqlite(tmp_path: Path) -> None:
    _filled(tmp_path).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks.sqlite", "index.faiss"]
    index = faiss.read_index(str(tmp_path / "index.faiss"))
    assert (index.ntotal, index.d) == (10, 8)
    assert (tmp_path / "index.faiss").read_bytes()[:4] == b"IxM2", "IndexIDMap2, not a pickle"
    with sqlite3.connect(tmp_path / "chunks.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM rows").fetchone() == (10,)
        assert db.execute("SELECT length(vector) FROM rows LIMIT 1").fetchone() == (8 * 4,)


def test_missing_index_is_rebuilt(tmp_path: Path) -> None:
    _filled(tmp_path).close()
    (tmp_path / "index.faiss").unlink()
    with FaissStore(path=tmp_path) as store:
        vectors = unit_vectors(10, 8)
        assert store.search(vectors[4], k=1)[0].chunk.id == "c4"
    assert faiss.read_index(str(tmp_path / "index.faiss")).ntotal == 10


def test_unreadable_index_is_rebuilt(tmp_path: Path) -> None:
    _filled(tmp_path).close()
    (tmp_path / "index.faiss").write_bytes(b"not an index")
    with FaissStore(path=tmp_path) as store:
        assert store.search(unit_vectors(10, 8)[7], k=1)[0].chunk.id == "c7"


def test_writes_without_close_survive_through_sqlite(tmp_path: Path) -> None:
    _filled(tmp_path).close()
    crashed = FaissStore(path=tmp_path)
    crashed.upsert([make_chunk("late")], unit_vectors(1, 8, seed=5))
    crashed.delete(["c0"])
    # No close(): index.faiss on disk is one generation behind chunks.sqlite.
    with FaissStore(path=tmp_path) as store:
        assert store.count() == 10
        assert store.search(unit_vectors(1, 8, seed=5)[0], k=1)[0].chunk.id == "late"
        assert "c0" not in {h.chunk.id for h in store.search(unit_vectors(10, 8)[0], k=10)}


def test_given_dimension_must_match_stored_one(tmp_path: Path) -> None:
    _filled(tmp_path).close()
    with pytest.raises(ConfigurationError, match="dimension 8"):
        FaissStore(path=tmp_path, dimension=4).count()


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.search(unit_vectors(1, 8)[0], k=1)


def test_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="is a file"):
        FaissStore(path=tmp_path / "file").count()


class TestHnswFaissStore(VectorStoreContract):
    """The contract with the approximate index forced at every size."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FaissStore]:
        with FaissStore(path=tmp_path / "faiss", index="hnsw", exact_filter_below=0) as store:
            yield store

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        def reopen(old: VectorStore) -> VectorStore:
            old.close()  # type: ignore[attr-defined]
            return FaissStore(path=tmp_path / "faiss", index="hnsw", exact_filter_below=0)

        return reopen


def _clustered(n: int, dimension: int, seed: int) -> np.ndarray:
    """Unit vectors around 50 shared centres, like real embeddings (not uniform)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((50, dimension))
    rows = centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dimension))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _chunks(n: int, start: int = 0) -> list[Chunk]:
    return [make_chunk(f"c{i:05d}", source=f"s{i % 3}.md") for i in range(start, start + n)]


def test_auto_switches_to_hnsw_above_the_threshold_and_back(tmp_path: Path) -> None:
    vectors = unit_vectors(260, 16)
    with FaissStore(path=tmp_path, approximate_above=200) as store:
        store.upsert(_chunks(150), vectors[:150])
        assert store.index_kind == "flat"
        store.upsert(_chunks(110, start=150), vectors[150:])
        assert store.index_kind == "hnsw"
        assert store.search(vectors[42], k=1)[0].chunk.id == "c00042"
        store.delete([f"c{i:05d}" for i in range(220, 260)])  # 220 left, 40 tombstones
        assert store.index_kind == "hnsw"
        assert "c00230" not in {h.chunk.id for h in store.search(vectors[230], k=3)}
        store.delete([f"c{i:05d}" for i in range(1, 220)])
        assert store.index_kind == "flat"
        assert [h.chunk.id for h in store.search(vectors[0], k=5)] == ["c00000"]


def test_hnsw_recall_against_exact_search(tmp_path: Path) -> None:
    vectors = _clustered(3000, 32, seed=1)
    queries = _clustered(50, 32, seed=2)
    with FaissStore(path=tmp_path, index="hnsw") as store:
        store.upsert(_chunks(3000), vectors)
        found = 0
        for query in queries:
            expected = {f"c{i:05d}" for i in np.argsort(-(vectors @ query))[:10]}
            found += len(expected & {h.chunk.id for h in store.search(query, k=10)})
    assert found / (10 * len(queries)) >= 0.98


def test_hnsw_tombstones_survive_reopen_and_trigger_a_rebuild(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vectors = unit_vectors(100, 16)
    replaced = unit_vectors(10, 16, seed=9)
    store = FaissStore(path=tmp_path, index="hnsw")
    store.upsert(_chunks(100), vectors)
    store.upsert(_chunks(10), replaced)  # c00000..c00009 get new vectors
    store.delete(["c00010", "c00011"])
    store.close()
    index = faiss.read_index(str(tmp_path / "index.faiss"))
    assert index.ntotal == 110, "HNSW keeps the 10 replaced and 2 deleted vectors as tombstones"
    with (
        caplog.at_level("INFO", logger="ragkit.stores"),
        FaissStore(tmp_path, index="hnsw") as again,
    ):
        assert again.count() == 98
        for i in (3, 10, 11):  # old vectors: the tombstones must not come back
            ids = [h.chunk.id for h in again.search(vectors[i], k=98)]
            assert len(ids) == len(set(ids)) == 98
            assert not {"c00010", "c00011"} & set(ids)
        hit = again.search(replaced[3], k=1)[0]
        assert (hit.chunk.id, hit.score) == ("c00003", pytest.approx(1.0, abs=1e-5))
        assert not [r for r in caplog.records if "Rebuild" in r.getMessage()], "loaded, not rebuilt"
        again.upsert(_chunks(15, start=20), unit_vectors(15, 16, seed=10))  # 27 of 125 dead
    assert faiss.read_index(str(tmp_path / "index.faiss")).ntotal == 98


def test_small_filters_on_hnsw_are_exact(tmp_path: Path) -> None:
    vectors = _clustered(600, 16, seed=3)
    with FaissStore(path=tmp_path, index="hnsw", ef_search=1, hnsw_m=2) as store:
        store.upsert(_chunks(600), vectors)
        for query in _clustered(5, 16, seed=4):
            scores = vectors @ query
            same = [i for i in np.argsort(-scores, kind="stable") if i % 3 == 1][:20]
            hits = store.search(query, k=20, filters={"source": "s1.md"})
            assert [h.chunk.id for h in hits] == [f"c{i:05d}" for i in same]


def test_forcing_an_index_kind_rebuilds_a_saved_one(tmp_path: Path) -> None:
    vectors = unit_vectors(50, 8)
    with FaissStore(path=tmp_path, index="hnsw") as store:
        store.upsert(_chunks(50), vectors)
        store.ef_search = 4  # settable at any time
        assert store.search(vectors[7], k=1)[0].chunk.id == "c00007"
    assert (tmp_path / "index.faiss").read_bytes()[:4] == b"IxM2"
    saved = faiss.read_index(str(tmp_path / "index.faiss"))
    assert isinstance(faiss.downcast_index(saved.index), faiss.IndexHNSWSQ)
    with FaissStore(path=tmp_path, index="flat") as store:
        assert store.index_kind == "flat"
    with FaissStore(path=tmp_path) as store:
        assert store.index_kind == "flat", "auto keeps the saved exact index below the threshold"
