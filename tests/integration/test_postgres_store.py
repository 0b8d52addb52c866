"""PostgresStore and its retrievers on a real PostgreSQL with pgvector: the contracts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from ragkit.backends.postgres import PostgresBackend, PostgresStore
from ragkit.backends.urls import PostgresSettings, parse_location
from ragkit.protocols import Retriever, VectorStore
from ragkit.testing import FakeEmbedder
from ragkit.testing.retriever_contract import Build, RetrieverContract
from ragkit.testing.store_contract import Reopen, VectorStoreContract
from ragkit.types import Chunk

pytestmark = pytest.mark.integration


def settings(url: str) -> PostgresSettings:
    parsed = parse_location(url)
    assert isinstance(parsed, PostgresSettings)
    return parsed


class TestPostgresStore(VectorStoreContract):
    @pytest.fixture
    def backends(self) -> Iterator[list[PostgresBackend]]:
        opened: list[PostgresBackend] = []
        yield opened
        for backend in opened:
            backend.close()

    @pytest.fixture
    def store(self, postgres_url: str, backends: list[PostgresBackend]) -> PostgresStore:
        backends.append(PostgresBackend(settings(postgres_url)))
        return backends[-1].store

    @pytest.fixture
    def reopen(self, postgres_url: str, backends: list[PostgresBackend]) -> Reopen:
        def reopen(old: VectorStore) -> VectorStore:
            backends.pop().close()
            backends.append(PostgresBackend(settings(postgres_url)))
            return backends[-1].store

        return reopen


def _builder(
    url: str, retrieval: str, opened: list[PostgresBackend]
) -> Callable[[Sequence[Chunk]], Retriever]:
    embedder = FakeEmbedder()

    def build(chunks: Sequence[Chunk]) -> Retriever:
        backend = PostgresBackend(settings(f"{url}{len(opened)}"))
        opened.append(backend)
        if chunks:
            backend.store.upsert(chunks, embedder.embed_documents([c.text for c in chunks]))
        return backend.retriever(retrieval, embedder)

    return build


class _Contract(RetrieverContract):
    retrieval = ""

    @pytest.fixture
    def build(self, postgres_url: str) -> Iterator[Build]:
        opened: list[PostgresBackend] = []
        yield _builder(postgres_url, self.retrieval, opened)
        for backend in opened:
            backend.close()


class TestPostgresKeywordRetriever(_Contract):
    retrieval = "keyword"


class TestPostgresDenseRetriever(_Contract):
    retrieval = "dense"


class TestPostgresHybridRetriever(_Contract):
    retrieval = "hybrid"
