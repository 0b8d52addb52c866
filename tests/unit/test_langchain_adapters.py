"""LangChain objects in ragkit slots, and ragkit retrievers in LangChain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.retrievers import BaseRetriever

from ragkit import RAG
from ragkit.adapters.langchain import (
    LangChainEmbedder,
    LangChainLoader,
    LangChainRetriever,
    as_langchain_retriever,
)
from ragkit.chunking import RecursiveChunker
from ragkit.errors import LoaderError
from ragkit.testing import FakeEmbedder


class PagesLoader(BaseLoader):
    """Returns one LangChain document per page, as PyPDFLoader does."""

    def __init__(self, path: str) -> None:
        self.path = path

    def lazy_load(self):  # type: ignore[no-untyped-def]
        pages = Path(self.path).read_text(encoding="utf-8").split("\f")
        for i, text in enumerate(pages):
            yield LCDocument(
                page_content=text,
                metadata={"source": self.path, "page": i, "page_label": str(i + 1)},
            )


class FailingLoader(BaseLoader):
    def __init__(self, path: str) -> None:
        self.path = path

    def lazy_load(self):  # type: ignore[no-untyped-def]
        raise ValueError("cannot parse")


def test_langchain_pages_become_one_document_with_page_spans(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text("first page text\fsecond page\fthird", encoding="utf-8")
    docs = LangChainLoader(PagesLoader).load(path)
    assert len(docs) == 1
    doc = docs[0]
    assert [doc.text[p.start : p.end] for p in doc.pages] == [
        "first page text",
        "second page",
        "third",
    ]
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert doc.pages[1].label == "2"
    chunks = RecursiveChunker(chunk_size=12, chunk_overlap=0, length="characters").split(doc)
    third = [c for c in chunks if c.text == "third"]
    assert third
    assert third[0].page == 3


def test_langchain_loader_failure_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    with pytest.raises(LoaderError, match=r"x\.bin.*cannot parse"):
        LangChainLoader(FailingLoader).load(path)


def test_langchain_loader_plugs_into_rag(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("alpha beta gamma\fdelta epsilon", encoding="utf-8")
    rag = RAG(embedder=FakeEmbedder(), loader=LangChainLoader(PagesLoader))
    report = rag.add(path)
    assert report.added == (str(path),)
    hit = rag.retrieve("delta epsilon", k=1)[0]
    assert (hit.chunk.page, hit.chunk.page_end) == (1, 2)  # one chunk spans both pages


def test_langchain_embeddings_are_normalized_and_sized() -> None:
    embedder = LangChainEmbedder(DeterministicFakeEmbedding(size=12), model_id="fake-lc")
    rows = embedder.embed_documents(["a", "b"])
    assert rows.shape == (2, 12)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    assert embedder.dimension == 12
    assert embedder.model_id == "fake-lc"
    np.testing.assert_allclose(embedder.embed_query("a"), rows[0], rtol=1e-5)


def test_ragkit_retriever_inside_langchain_keeps_provenance() -> None:
    rag = RAG(embedder=FakeEmbedder())
    from ragkit import Document

    rag.add(Document(text="The pool holds twenty connections.", source="faq.txt"))
    lc = as_langchain_retriever(rag, k=1)
    assert isinstance(lc, BaseRetriever)
    docs = lc.invoke("pool connections")
    assert docs[0].page_content == "The pool holds twenty connections."
    meta = docs[0].metadata
    assert (meta["source"], meta["start"], meta["end"]) == ("faq.txt", 0, 34)
    assert meta["chunk_id"]
    assert meta["score"] > 0


def test_langchain_retriever_in_ragkit_slot() -> None:
    class Fixed(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager=None):  # type: ignore[no-untyped-def]
            return [
                LCDocument(page_content="one", metadata={"source": "a.txt", "start_index": 5}),
                LCDocument(page_content="two", metadata={"source": "b.txt"}),
            ]

    hits = LangChainRetriever(Fixed()).retrieve("q", k=1)
    assert len(hits) == 1
    chunk = hits[0].chunk
    assert (chunk.source, chunk.start, chunk.end, chunk.text) == ("a.txt", 5, 8, "one")
