"""FaissStore with real FAISS and SQLite on disk: the store contract plus its files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import faiss
import pytest

from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import VectorStore
from ragkit.stores import FaissStore
from ragkit.testing.store_contract import Reopen, VectorStoreContract, make_chunk, unit_vectors

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
