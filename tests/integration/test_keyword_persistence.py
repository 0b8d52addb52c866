"""The keyword index of a real kb folder: saved, reopened, rebuilt when lost (real MiniLM)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ragkit import RAG

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sample_docs"


@pytest.mark.parametrize("store", ["chroma", "faiss"])
def test_keyword_index_persists_and_is_rebuilt(store: str, tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    kb = tmp_path / "kb"
    query = "How large is the connection pool?"
    with RAG(kb, store=store, embedder=minilm) as rag:
        rag.add(SAMPLES)
        assert rag.keyword is not None
        ids = rag.store.ids()
        assert rag.keyword.ids() == ids
        hits = rag.retrieve(query, k=4)
        assert hits
        assert hits[0].chunk.source.endswith("operations-faq.txt")
    assert (kb / "keyword" / "keyword.sqlite").is_file()

    with RAG(kb, embedder=minilm) as rag:  # reopened: same index, same answers
        assert rag.keyword is not None
        assert rag.keyword.ids() == ids
        assert rag.retrieve(query, k=4) == hits
    with RAG(kb, embedder=minilm, retrieval="keyword") as rag:
        top = rag.retrieve("connection pool per host", k=1)
        assert top[0].chunk.source.endswith("operations-faq.txt")

    shutil.rmtree(kb / "keyword")
    with RAG(kb, embedder=minilm) as rag:  # lost: rebuilt from the store's chunks
        assert rag.keyword is not None
        assert rag.keyword.ids() == ids
        assert rag.retrieve(query, k=4) == hits
        source = next(s for s in (str(p) for p in SAMPLES.iterdir()) if "operations" in s)
        assert rag.delete(source) > 0
        assert all(h.chunk.source != source for h in rag.retrieve(query, k=10))
    with RAG(kb, embedder=minilm, retrieval="keyword") as rag:
        assert rag.keyword is not None
        assert rag.keyword.ids() == rag.store.ids()
        assert all(h.chunk.source != source for h in rag.retrieve("connection pool", k=10))
