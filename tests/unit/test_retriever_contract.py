"""Every retriever ragkit ships passes the same contract."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ragkit.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, KeywordIndex
from ragkit.stores import MemoryStore
from ragkit.testing import FakeEmbedder
from ragkit.testing.retriever_contract import Build, RetrieverContract
from ragkit.types import Chunk


def _dense(chunks: Sequence[Chunk]) -> DenseRetriever:
    embedder, store = FakeEmbedder(), MemoryStore()
    store.upsert(chunks, embedder.embed_documents([c.text for c in chunks]))
    return DenseRetriever(embedder, store)


def _keyword(chunks: Sequence[Chunk]) -> BM25Retriever:
    index = KeywordIndex()
    index.upsert(chunks)
    return BM25Retriever(index)


class TestDenseRetriever(RetrieverContract):
    @pytest.fixture
    def build(self) -> Build:
        return _dense


class TestBM25Retriever(RetrieverContract):
    @pytest.fixture
    def build(self) -> Build:
        return _keyword


class TestHybridRetrieverRRF(RetrieverContract):
    @pytest.fixture
    def build(self) -> Build:
        return lambda chunks: HybridRetriever(_dense(chunks), _keyword(chunks), fusion="rrf")


class TestHybridRetrieverWeighted(RetrieverContract):  # the default fusion
    @pytest.fixture
    def build(self) -> Build:
        return lambda chunks: HybridRetriever(_dense(chunks), _keyword(chunks))
