"""RAG end to end on every store backend, persisted and reopened (real MiniLM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit import RAG

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sample_docs"


@pytest.mark.parametrize("store", ["chroma", "faiss", "memory"])
def test_index_reopen_and_answer(store: str, tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    kb = tmp_path / "kb"
    with RAG(kb, store=store, embedder=minilm) as rag:
        report = rag.add(SAMPLES)
        assert len(report.added) == 4
        assert report.failed == ()
        count = rag.store.count()

    with RAG(kb, embedder=minilm) as rag:  # the store backend is read from the kb
        assert rag.store_name == store
        assert rag.store.count() == count
        answer = rag.ask("How large is the connection pool?")
        assert not answer.refused
        assert "20 connections per host" in answer.text
        assert answer.citations[0].source.endswith("operations-faq.txt")
        quote = answer.citations[0]
        text = (SAMPLES / "operations-faq.txt").read_text(encoding="utf-8")
        assert text[quote.start : quote.end] == quote.quote

        refusal = rag.ask("What is the capital of Australia?")
        assert refusal.refused
        assert refusal.citations == ()


def test_embeddings_are_cached_in_the_kb(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    kb = tmp_path / "kb"
    with RAG(kb, embedder=minilm) as rag:
        rag.add(SAMPLES)
    with RAG(kb, embedder=minilm, store="chroma") as rag:
        rag.store.delete(rag.store.ids())  # lose the vectors, keep the cache
        rag.add(SAMPLES)
        cache = rag.embedder
        assert cache.misses == 0  # type: ignore[attr-defined]
        assert cache.hits > 0  # type: ignore[attr-defined]
