"""MemoryStore: the store contract, in memory and saved to a folder, plus its files."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import VectorStore
from ragkit.stores import MemoryStore
from ragkit.testing.store_contract import Reopen, VectorStoreContract, make_chunk, unit_vectors


class TestMemoryStore(VectorStoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


class TestSavedMemoryStore(VectorStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[MemoryStore]:
        with MemoryStore(path=tmp_path / "kb") as store:
            yield store

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        def reopen(old: VectorStore) -> VectorStore:
            old.close()  # type: ignore[attr-defined]
            return MemoryStore(path=tmp_path / "kb")

        return reopen


def test_files_are_plain_npy_and_json(tmp_path: Path) -> None:
    store = MemoryStore(path=tmp_path / "kb")
    vectors = unit_vectors(3, 8)
    store.upsert([make_chunk(f"c{i}") for i in range(3)], vectors)
    assert sorted(p.name for p in (tmp_path / "kb").iterdir()) == ["chunks.json", "vectors.npy"]
    saved = np.load(tmp_path / "kb" / "vectors.npy", allow_pickle=False)
    np.testing.assert_allclose(saved, vectors, atol=1e-6)
    header = json.loads((tmp_path / "kb" / "chunks.json").read_text(encoding="ascii"))
    assert [c["id"] for c in header["chunks"]] == ["c0", "c1", "c2"]


def test_every_write_is_saved(tmp_path: Path) -> None:
    store = MemoryStore(path=tmp_path)
    store.upsert([make_chunk("a"), make_chunk("b")], unit_vectors(2, 4))
    store.delete(["a"])
    assert MemoryStore(path=tmp_path).ids() == ["b"]


def test_files_from_an_interrupted_save_are_refused(tmp_path: Path) -> None:
    store = MemoryStore(path=tmp_path)
    store.upsert([make_chunk("a"), make_chunk("b")], unit_vectors(2, 4))
    np.save(tmp_path / "vectors.npy", unit_vectors(2, 4, seed=9), allow_pickle=False)
    with pytest.raises(StoreError, match="do not belong together"):
        MemoryStore(path=tmp_path)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    MemoryStore(path=tmp_path).upsert([make_chunk("a")], unit_vectors(1, 4))
    (tmp_path / "vectors.npy").unlink()
    with pytest.raises(StoreError, match=r"vectors\.npy"):
        MemoryStore(path=tmp_path)


def test_pickled_vectors_are_not_loaded(tmp_path: Path) -> None:
    MemoryStore(path=tmp_path).upsert([make_chunk("a")], unit_vectors(1, 4))
    np.save(tmp_path / "vectors.npy", np.array([object()]), allow_pickle=True)
    with pytest.raises(StoreError):
        MemoryStore(path=tmp_path)


def test_given_dimension_must_match_saved_one(tmp_path: Path) -> None:
    MemoryStore(path=tmp_path).upsert([make_chunk("a")], unit_vectors(1, 4))
    with pytest.raises(ConfigurationError, match="dimension 4"):
        MemoryStore(dimension=8, path=tmp_path)
    assert MemoryStore(dimension=4, path=tmp_path).dimension == 4


def test_constructor_dimension_is_enforced() -> None:
    store = MemoryStore(dimension=8)
    with pytest.raises(ConfigurationError, match="dimension 4"):
        store.upsert([make_chunk("a")], unit_vectors(1, 4))
    with pytest.raises(ConfigurationError):
        MemoryStore(dimension=0)


def test_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="is a file"):
        MemoryStore(path=tmp_path / "file")


def test_save_without_path_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no path"):
        MemoryStore().save()


def test_unstorable_metadata_is_rejected_before_writing() -> None:
    store = MemoryStore()
    chunks = [make_chunk("ok"), make_chunk("bad", metadata={"when": object()})]
    with pytest.raises(ConfigurationError, match="'bad'"):
        store.upsert(chunks, unit_vectors(2, 4))
    assert store.count() == 0


def test_vectors_are_normalized_so_scores_are_cosine() -> None:
    store = MemoryStore()
    store.upsert([make_chunk("long"), make_chunk("short")], np.array([[3.0, 4.0], [0.0, 0.5]]))
    hits = store.search(np.array([0.0, 10.0], dtype=np.float32), k=2)
    assert [h.chunk.id for h in hits] == ["short", "long"]
    assert [h.score for h in hits] == pytest.approx([1.0, 0.8])


def test_concurrent_writes_and_searches() -> None:
    store = MemoryStore(dimension=8)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for batch in range(10):
                ids = [f"w{worker}-{batch}-{i}" for i in range(5)]
                store.upsert([make_chunk(i) for i in ids], unit_vectors(5, 8, seed=batch))
                store.search(unit_vectors(1, 8, seed=worker)[0], k=3, filters={"source": "doc.md"})
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 8 * 10 * 5
