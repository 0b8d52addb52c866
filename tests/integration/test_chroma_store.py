"""ChromaStore on a real Chroma PersistentClient: the store contract plus Chroma specifics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

from ragkit.errors import ConfigurationError, StoreError
from ragkit.protocols import VectorStore
from ragkit.stores import ChromaStore
from ragkit.testing.store_contract import Reopen, VectorStoreContract, make_chunk, unit_vectors

pytestmark = pytest.mark.integration


class TestChromaStore(VectorStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ChromaStore]:
        with ChromaStore(path=tmp_path / "chroma") as store:
            yield store

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Reopen:
        def reopen(old: VectorStore) -> VectorStore:
            old.close()  # type: ignore[attr-defined]
            return ChromaStore(path=tmp_path / "chroma")

        return reopen

    def test_large_batch_exceeds_chromas_limit(self, store: ChromaStore) -> None:
        assert store.client.get_max_batch_size() < self.large_batch


def _raw_client(path: Path) -> Any:
    return chromadb.PersistentClient(str(path), settings=Settings(anonymized_telemetry=False))


def test_collection_has_no_embedding_function_and_cosine_space(tmp_path: Path) -> None:
    with ChromaStore(path=tmp_path) as store:
        store.upsert([make_chunk("a")], unit_vectors(1, 8))
        assert store.client.get_settings().anonymized_telemetry is False
    client = _raw_client(tmp_path)
    try:
        configuration = client.get_collection("ragkit").configuration
        assert configuration["embedding_function"] is None
        assert configuration["hnsw"]["space"] == "cosine"
    finally:
        client.close()


def test_no_embedding_model_is_ever_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chromadb.utils import embedding_functions

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Chroma tried to embed text (and download a model)")

    monkeypatch.setattr(embedding_functions.DefaultEmbeddingFunction, "__call__", refuse)
    monkeypatch.setattr(
        embedding_functions.ONNXMiniLM_L6_V2, "_download_model_if_not_exists", refuse
    )
    with ChromaStore(path=tmp_path) as store:
        vectors = unit_vectors(3, 8)
        store.upsert([make_chunk(f"c{i}") for i in range(3)], vectors)
        assert store.search(vectors[1], k=1, filters={"source": "doc.md"})[0].chunk.id == "c1"
        assert store.get(["c2"])[0].id == "c2"


class _DroppingCollection:
    """A real collection whose query() loses hits, as HNSW can under a filter."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def query(self, **kwargs: Any) -> Any:
        result = self._collection.query(**kwargs)
        return {key: [result[key][0][:1]] for key in ("ids", "distances", "metadatas")}


class _DroppingClient:
    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_or_create_collection(self, *args: Any, **kwargs: Any) -> Any:
        return _DroppingCollection(self._client.get_or_create_collection(*args, **kwargs))


def test_too_few_hits_from_chroma_fall_back_to_exact_scoring(tmp_path: Path) -> None:
    client = _raw_client(tmp_path)
    try:
        store = ChromaStore(client=_DroppingClient(client))
        vectors = unit_vectors(30, 8, seed=4)
        chunks = [make_chunk(f"c{i:02d}", metadata={"group": i % 3}) for i in range(30)]
        store.upsert(chunks, vectors)
        hits = store.search(vectors[0], k=4, filters={"group": 0})
        expected = [i for i in np.argsort(-(vectors @ vectors[0])) if i % 3 == 0][:4]
        assert [h.chunk.id for h in hits] == [chunks[i].id for i in expected]
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        store.close()
        assert client.count_collections() == 1, "a client passed in stays open"
    finally:
        client.close()


def test_path_and_client_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        ChromaStore(path=tmp_path, client=object())


def test_collection_in_another_space_is_refused(tmp_path: Path) -> None:
    client = _raw_client(tmp_path)
    try:
        client.create_collection(
            "l2-space", embedding_function=None, configuration={"hnsw": {"space": "l2"}}
        )
        with pytest.raises(ConfigurationError, match="'l2'"):
            ChromaStore(client=client, collection="l2-space").count()
    finally:
        client.close()


def test_reopened_store_knows_its_dimension(tmp_path: Path) -> None:
    with ChromaStore(path=tmp_path) as store:
        store.upsert([make_chunk("a")], unit_vectors(1, 8))
    with ChromaStore(path=tmp_path) as store:
        assert store.dimension == 8
    with pytest.raises(ConfigurationError, match="dimension 8"):
        ChromaStore(path=tmp_path, dimension=4).count()


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = ChromaStore(path=tmp_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count()


def test_in_memory_store() -> None:
    name = f"test-{uuid.uuid4().hex}"
    store = ChromaStore(collection=name)
    try:
        vectors = unit_vectors(5, 8)
        store.upsert([make_chunk(f"c{i}") for i in range(5)], vectors)
        assert store.search(vectors[3], k=1)[0].chunk.id == "c3"
    finally:
        store.client.delete_collection(name)
        store.close()
