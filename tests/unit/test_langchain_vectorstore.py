"""Any LangChain VectorStore as a ragkit store: LangChain's InMemoryVectorStore through the
store contract, and a RAG on it."""

from __future__ import annotations

from typing import Any

import pytest

from ragkit.testing.store_contract import VectorStoreContract

vectorstores = pytest.importorskip("langchain_core.vectorstores")

from ragkit.adapters.langchain import LangChainVectorStore  # noqa: E402


class TestInMemoryVectorStore(VectorStoreContract):
    large_batch = 1500  # the in-memory store scores in Python; the contract's 6,000 is slow

    @pytest.fixture
    def store(self) -> LangChainVectorStore:
        return LangChainVectorStore(vectorstores.InMemoryVectorStore)


class _TextOnlyStore:
    """A LangChain store with only the generic API (search by text, through embeddings)."""

    def __init__(self, embeddings: Any) -> None:
        self.inner = vectorstores.InMemoryVectorStore(embeddings)
        self.embeddings = embeddings

    def add_texts(self, texts: Any, metadatas: Any = None, *, ids: Any = None) -> list[str]:
        return self.inner.add_texts(texts, metadatas=metadatas, ids=ids)  # type: ignore[no-any-return]

    def delete(self, ids: Any = None) -> None:
        self.inner.delete(ids)

    def get_by_ids(self, ids: Any) -> list[Any]:
        return self.inner.get_by_ids(ids)  # type: ignore[no-any-return]

    def similarity_search_with_score(self, query: str, k: int = 4) -> list[Any]:
        vector = self.embeddings.embed_query(query)
        return self.inner.similarity_search_with_score_by_vector(vector, k=k)  # type: ignore[no-any-return]


class TestGenericLangChainStore(VectorStoreContract):
    large_batch = 1500

    @pytest.fixture
    def store(self) -> LangChainVectorStore:
        return LangChainVectorStore(_TextOnlyStore)


def test_a_rag_on_a_langchain_store_answers_with_exact_offsets() -> None:
    from ragkit import RAG, Document
    from ragkit.testing import FakeEmbedder

    store = LangChainVectorStore(vectorstores.InMemoryVectorStore)
    text = "Intro line.\n\nThe default timeout is five seconds.\n\nPools hold ten connections."
    with RAG(None, store=store, embedder=FakeEmbedder(), retrieval="dense", verify=False) as rag:
        rag.add([Document(text=text, source="notes.txt")])
        hit = rag.retrieve("default timeout five seconds", k=1)[0]
    assert text[hit.chunk.start : hit.chunk.end] == hit.chunk.text
    assert "five seconds" in hit.chunk.text
    assert store.count() >= 1
