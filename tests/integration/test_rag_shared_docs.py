"""End to end on ../shared/docs: real loaders, real MiniLM, real Chroma on disk."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from ragkit import RAG, IndexReport
from ragkit.loaders import AutoLoader

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def indexed(shared: Path, minilm, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    kb = tmp_path_factory.mktemp("kb-shared")
    rag = RAG(kb, embedder=minilm)
    report = rag.add(shared / "docs")
    yield rag, report, shared / "docs"
    rag.close()


def _all_chunks(rag: RAG):  # type: ignore[no-untyped-def]
    ids = rag.store.ids()
    return rag.store.get(ids)


def test_every_text_bearing_file_is_indexed_and_the_scan_reported(indexed) -> None:  # type: ignore[no-untyped-def]
    rag, report, docs = indexed
    assert isinstance(report, IndexReport)
    files = sorted(str(p) for p in docs.rglob("*") if p.is_file())
    scanned = str(docs / "pdf" / "haystack_non_text_searchable.pdf")
    assert [f.source for f in report.failed] == [scanned]
    assert re.search(r"text layer|OCR", report.failed[0].reason)
    assert sorted(report.added) == sorted(f for f in files if f != scanned)
    sources = {c.source for c in _all_chunks(rag)}
    assert sources == set(report.added)
    assert rag.stats()["sources"] == len(report.added)


def test_every_chunk_is_an_exact_slice_of_its_document(indexed) -> None:  # type: ignore[no-untyped-def]
    rag, report, _ = indexed
    by_doc = defaultdict(list)
    for chunk in _all_chunks(rag):
        by_doc[chunk.document_id].append(chunk)
    loader = AutoLoader()
    checked = 0
    for source in report.added:
        for doc in loader.load(Path(source)):
            for chunk in by_doc.pop(doc.id, []):
                assert doc.text[chunk.start : chunk.end] == chunk.text, (source, chunk.start)
                checked += 1
    assert by_doc == {}  # every stored chunk belongs to a document we re-loaded
    assert checked == rag.store.count()


def test_rfc2616_pdf_chunk_pages_agree_with_the_page_footers(indexed) -> None:  # type: ignore[no-untyped-def]
    rag, _, docs = indexed
    pdf = str(docs / "pdf" / "rfc2616.pdf")
    chunks = rag.store.get(rag.store.ids({"source": pdf}))
    assert len(chunks) > 100
    footers_seen = 0
    for chunk in chunks:
        assert chunk.page is not None
        assert chunk.page_end is not None
        assert 1 <= chunk.page <= chunk.page_end <= 176
        for n in re.findall(r"\[Page (\d+)\]", chunk.text):
            footers_seen += 1
            assert chunk.page <= int(n) <= chunk.page_end, (n, chunk.page, chunk.page_end)
        if chunk.page == chunk.page_end and "[Page" in chunk.text:
            assert f"[Page {chunk.page}]" in chunk.text
    assert footers_seen >= 150


def test_ask_about_httpx_timeouts_cites_the_timeouts_page(indexed) -> None:  # type: ignore[no-untyped-def]
    rag, _, docs = indexed
    filters = {"source": {"$in": [str(p) for p in (docs / "markdown").rglob("*.md")]}}
    answer = rag.ask("How do I set a timeout on an httpx Client?", k=4, filters=filters)
    assert not answer.refused
    cited = {c.source for c in answer.citations}
    assert str(docs / "markdown" / "httpx-docs" / "advanced" / "timeouts.md") in cited
    assert "timeout" in answer.text
    for c in answer.citations:
        assert c.quote in Path(c.source).read_text(encoding="utf-8")


def test_ask_about_httpx_without_filters_still_finds_httpx_docs(indexed) -> None:  # type: ignore[no-untyped-def]
    rag, _, _ = indexed
    answer = rag.ask("How do I set a timeout on an httpx Client?", k=4)
    assert any("httpx-docs" in c.source for c in answer.citations)


def test_pdf_answer_cites_pages(indexed) -> None:  # type: ignore[no-untyped-def]
    rag, _, docs = indexed
    pdf = str(docs / "pdf" / "rfc2616.pdf")
    answer = rag.ask("What does the 404 Not Found status code mean?", filters={"source": pdf})
    assert answer.citations
    assert all(c.page is not None for c in answer.citations)
    assert "404" in answer.text or "Not Found" in answer.text
