"""MilvusStore on a real Milvus Lite server: the store and retriever contracts, BM25,
hybrid search and filters that keep few chunks."""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from ragkit.backends.milvus import MilvusStore
from ragkit.backends.milvus.retrievers import MilvusHybridRetriever, MilvusKeywordRetriever
from ragkit.backends.urls import MilvusSettings, parse_location
from ragkit.errors import ConfigurationError, MissingDependencyError, StoreError
from ragkit.protocols import Retriever, VectorStore
from ragkit.retrieval import DenseRetriever, HybridRetriever
from ragkit.testing import FakeEmbedder
from ragkit.testing.retriever_contract import Build, RetrieverContract
from ragkit.testing.store_contract import Reopen, VectorStoreContract, make_chunk, unit_vectors
from ragkit.types import Chunk

pytestmark = pytest.mark.integration

_names = itertools.count()


def settings(url: str, prefix: str = "t") -> MilvusSettings:
    """Settings for a collection no other test uses."""
    parsed = parse_location(f"{url}?collection={prefix}{next(_names)}")
    assert isinstance(parsed, MilvusSettings)
    return parsed


class TestMilvusStore(VectorStoreContract):
    large_batch = 6000

    @pytest.fixture
    def milvus_settings(self, milvus_url: str) -> MilvusSettings:
        return settings(milvus_url)

    @pytest.fixture
    def store(self, milvus_settings: MilvusSettings) -> Iterator[MilvusStore]:
        store = MilvusStore(milvus_settings)
        yield store
        store.close()

    @pytest.fixture
    def reopen(self, milvus_settings: MilvusSettings) -> Reopen:
        def reopen(old: VectorStore) -> VectorStore:
            old.close()  # type: ignore[attr-defined]
            return MilvusStore(milvus_settings)

        return reopen


class _Builds:
    """A ``build`` fixture: each call fills a new collection; all closed at the end."""

    embedder = FakeEmbedder(dimension=32)

    def make(self, store: MilvusStore) -> Retriever:
        raise NotImplementedError

    @pytest.fixture
    def build(self, milvus_url: str) -> Iterator[Build]:
        stores: list[MilvusStore] = []

        def build(chunks: Sequence[Chunk]) -> Retriever:
            store = MilvusStore(settings(milvus_url, "r"))
            stores.append(store)
            if chunks:
                store.upsert(chunks, self.embedder.embed_documents([c.text for c in chunks]))
            return self.make(store)

        yield build
        for store in stores:
            store.close()


class TestMilvusDenseRetriever(_Builds, RetrieverContract):
    def make(self, store: MilvusStore) -> Retriever:
        return DenseRetriever(self.embedder, store)


class TestMilvusKeywordRetriever(_Builds, RetrieverContract):
    def make(self, store: MilvusStore) -> Retriever:
        return MilvusKeywordRetriever(store)


class TestMilvusHybridRetriever(_Builds, RetrieverContract):
    def make(self, store: MilvusStore) -> Retriever:
        return MilvusHybridRetriever(store, self.embedder)


class NoiseEmbedder(FakeEmbedder):
    """One random vector per whole text: dense search finds nothing by meaning."""

    def _embed(self, text: str) -> NDArray[np.float32]:
        vector = self._word_vector("\x00" + text)
        unit: NDArray[np.float32] = vector / np.linalg.norm(vector)
        return unit


_TOPICS = ["timeouts", "retries", "proxies", "cookies", "certificates", "pools", "logging"]


def corpus(n: int) -> list[Chunk]:
    return [
        make_chunk(
            f"c{i:04d}",
            f"Notes on {_TOPICS[i % 7]} and request handling, part {i}.",
            source=f"doc{i % 10}.md",
            metadata={"rare": i % 50 == 7, "team/name": "core" if i % 50 == 9 else "edge"},
        )
        for i in range(n)
    ]


@pytest.fixture
def noise_store(milvus_url: str) -> Iterator[tuple[MilvusStore, NoiseEmbedder]]:
    store, embedder = MilvusStore(settings(milvus_url, "n")), NoiseEmbedder(dimension=32)
    chunks = corpus(500)
    chunks[123] = make_chunk(
        "c0123", "Flash the XJ-9000 controller before updating request handling."
    )
    store.upsert(chunks, embedder.embed_documents([c.text for c in chunks]))
    yield store, embedder
    store.close()


def test_an_identifier_only_keywords_find(noise_store: tuple[MilvusStore, NoiseEmbedder]) -> None:
    store, embedder = noise_store
    query = "XJ-9000"
    dense = DenseRetriever(embedder, store).retrieve(query, k=5)
    assert "c0123" not in [h.chunk.id for h in dense]  # the premise: vectors are noise
    keyword = MilvusKeywordRetriever(store).retrieve(query, k=5)
    assert keyword[0].chunk.id == "c0123"
    hybrid = MilvusHybridRetriever(store, embedder).retrieve(query, k=3)
    assert "c0123" in [h.chunk.id for h in hybrid]
    # The backend's hybrid: ragkit's fusion of the two lists, BM25 on a worker thread.
    fused = default_hybrid(store, embedder).retrieve(query, k=1)
    assert fused[0].chunk.id == "c0123"


def default_hybrid(store: MilvusStore, embedder: NoiseEmbedder) -> HybridRetriever:
    return HybridRetriever(
        DenseRetriever(embedder, store), MilvusKeywordRetriever(store), parallel=True
    )


@pytest.mark.parametrize("field", ["rare", "team/name"])
def test_filters_keeping_two_percent_still_fill_k(
    noise_store: tuple[MilvusStore, NoiseEmbedder], field: str
) -> None:
    # "rare" is an exact Milvus expression; "team/name" cannot be a JSON path, so the
    # store asks for more candidates and filters them itself.
    store, embedder = noise_store
    filters = {"rare": True} if field == "rare" else {"team/name": "core"}
    wanted = set(store.ids(filters))
    assert len(wanted) == 10
    query = "request handling notes"
    for retriever in (
        DenseRetriever(embedder, store),
        MilvusKeywordRetriever(store),
        MilvusHybridRetriever(store, embedder),
        default_hybrid(store, embedder),
    ):
        hits = retriever.retrieve(query, k=5, filters=filters)
        assert len(hits) == 5, type(retriever).__name__
        assert {h.chunk.id for h in hits} <= wanted
    exact = DenseRetriever(embedder, store).retrieve(query, k=5, filters=filters)
    vectors = embedder.embed_documents([c.text for c in store.get(sorted(wanted))])
    scores = vectors @ embedder.embed_query(query)
    best = sorted(zip(scores, sorted(wanted), strict=True), reverse=True)
    assert [h.chunk.id for h in exact] == [i for _, i in best[:5]]


def test_a_chunk_too_large_for_milvus_writes_nothing(milvus_url: str) -> None:
    store = MilvusStore(settings(milvus_url, "big"))
    try:
        chunks = [make_chunk("fine"), make_chunk("huge", "東京" * 20_000)]
        with pytest.raises(ConfigurationError, match="huge"):
            store.upsert(chunks, unit_vectors(2, 8))
        assert store.count() == 0
    finally:
        store.close()


def test_server_down_is_a_store_error() -> None:
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:9\b"):
        MilvusStore(parse_location("milvus://127.0.0.1:9?collection=x"))  # type: ignore[arg-type]


def test_without_pymilvus_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragkit.backends.milvus import MilvusBackend

    monkeypatch.setitem(sys.modules, "pymilvus", None)  # import pymilvus -> ImportError
    with pytest.raises(MissingDependencyError, match=r"ragkit\[milvus\]"):
        MilvusBackend(settings("milvus://127.0.0.1:9"))


def test_the_token_is_never_in_messages(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MILVUS_TOKEN", "s3cret-token")
    unreachable = settings("milvus://127.0.0.1:9")
    assert unreachable.token == "s3cret-token"
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreError) as info:
        MilvusStore(unreachable)
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(unreachable)
    assert "s3cret" not in caplog.text
