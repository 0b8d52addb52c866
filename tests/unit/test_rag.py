"""The RAG facade and the indexer, with fakes and the memory store (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit import RAG, Answer, Document, ScoredChunk
from ragkit.chunking import RecursiveChunker
from ragkit.errors import ConfigurationError, EmbedderMismatchError
from ragkit.testing import FakeEmbedder, FakeGenerator


def _write(folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    _write(
        folder,
        {
            "timeouts.md": "# Timeouts\n\nThe default timeout is five seconds.\n",
            "pool.txt": "The connection pool holds twenty connections per host.\n",
            "nested/deeper/colors.txt": "The logo is painted teal and orange.\n",
            "broken.pdf": b"%PDF-1.4 this is not really a pdf",
            "empty.txt": "",
        },
    )
    return folder


def _rag(path: Path | None = None, **kwargs: object) -> RAG:
    kwargs.setdefault("embedder", FakeEmbedder())
    kwargs.setdefault("store", "memory")
    kwargs.setdefault(
        "chunker", RecursiveChunker(chunk_size=40, chunk_overlap=5, length="characters")
    )
    return RAG(path, **kwargs)  # type: ignore[arg-type]


def test_add_indexes_good_files_and_reports_bad_ones(docs: Path) -> None:
    rag = _rag()
    report = rag.add(docs)
    assert sorted(Path(s).name for s in report.added) == ["colors.txt", "pool.txt", "timeouts.md"]
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert set(failed) == {"broken.pdf", "empty.txt"}
    assert all(reason for reason in failed.values())
    assert report.chunks_added == rag.store.count() > 3
    assert rag.stats()["sources"] == 3


def test_re_adding_unchanged_files_writes_nothing(docs: Path) -> None:
    embedder = FakeEmbedder()
    rag = _rag(embedder=embedder)
    rag.add(docs)
    count, embedded = rag.store.count(), embedder.texts_embedded
    again = rag.add(docs)
    assert again.added == ()
    assert len(again.unchanged) == 3
    assert again.chunks_added == 0
    assert rag.store.count() == count
    assert embedder.texts_embedded == embedded


def test_changed_file_replaces_its_chunks_without_duplicates(docs: Path) -> None:
    rag = _rag()
    rag.add(docs)
    (docs / "pool.txt").write_text("The pool now holds fifty connections.\n", encoding="utf-8")
    report = rag.add(docs / "pool.txt")
    assert report.updated == (str(docs / "pool.txt"),)
    texts = [c.text for c in rag.store.get(rag.store.ids({"source": str(docs / "pool.txt")}))]
    assert any("fifty" in t for t in texts)
    assert not any("twenty" in t for t in texts)


def test_include_and_exclude_globs(docs: Path) -> None:
    rag = _rag()
    report = rag.add(docs, include=["**/*.txt"], exclude=["nested/**"])
    assert [Path(s).name for s in report.added] == ["pool.txt"]


def test_documents_without_files_and_delete(tmp_path: Path) -> None:
    rag = _rag()
    doc = Document(
        text="Our SLA is ninety nine percent.", source="crm://42", metadata={"team": "sales"}
    )
    report = rag.add(doc, [Document(text="Lunch is at noon.", source="wiki://lunch")])
    assert sorted(report.added) == ["crm://42", "wiki://lunch"]
    hits = rag.retrieve("SLA percent", k=5, filters={"team": "sales"})
    assert [h.chunk.source for h in hits] == ["crm://42"]
    assert rag.delete("crm://42") == 1
    assert rag.store.ids({"source": "crm://42"}) == []
    assert rag.store.count() == 1


def test_missing_path_is_reported_not_raised(tmp_path: Path) -> None:
    report = _rag().add(tmp_path / "nope")
    assert [f.source for f in report.failed] == [str(tmp_path / "nope")]
    assert "no such file" in report.failed[0].reason


def test_ask_returns_a_cited_answer(docs: Path) -> None:
    rag = _rag()
    rag.add(docs)
    answer = rag.ask("What is the default timeout?", k=2)
    assert isinstance(answer, Answer)
    assert answer.extractive
    assert not answer.refused
    assert "five seconds" in answer.text
    assert answer.citations
    assert answer.citations[0].source == str(docs / "timeouts.md")
    assert "[1]" in str(answer)


def test_custom_generator_and_stream(docs: Path) -> None:
    rag = _rag(generator=FakeGenerator(cite=(1,)), verify=False)
    rag.add(docs)
    items = list(rag.stream("timeout", k=1))
    final = items[-1]
    assert isinstance(final, Answer)
    assert final.text == "Answer from the context [1]."
    assert len(final.citations) == 1


def test_verification_refuses_an_answer_no_passage_supports(docs: Path) -> None:
    rag = _rag(generator=FakeGenerator(cite=(1,), text="Penguins migrate across deserts"))
    rag.add(docs)
    answer = rag.ask("default timeout", k=2)
    assert answer.refused
    assert answer.citations == ()
    assert answer.related
    assert answer.unsupported == ("Penguins migrate across deserts.",)


def test_verified_extractive_answer_keeps_its_quotes(docs: Path) -> None:
    rag = _rag()
    rag.add(docs)
    answer = rag.ask("What is the default timeout?", k=2)
    assert not answer.refused
    assert answer.citations[0].quote == "The default timeout is five seconds."
    assert answer.unsupported == ()


def test_kb_folder_remembers_embedder_and_store(tmp_path: Path, docs: Path) -> None:
    kb = tmp_path / "kb"
    rag = _rag(kb)
    rag.add(docs)
    rag.close()
    reopened = _rag(kb)
    assert reopened.store.count() > 0
    assert reopened.ask("default timeout").citations
    reopened.close()
    with pytest.raises(EmbedderMismatchError, match="fake-hash-64"):
        _rag(kb, embedder=FakeEmbedder(dimension=32))
    with pytest.raises(ConfigurationError, match="'memory' store"):
        _rag(kb, store="faiss")


def test_unknown_store_name_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown store"):
        _rag(store="elastic")


# -- keyword and hybrid retrieval ---------------------------------------------------------


@pytest.mark.parametrize(
    ("retrieval", "kind"),
    [("hybrid", "HybridRetriever"), ("keyword", "BM25Retriever"), ("dense", "DenseRetriever")],
)
def test_each_retrieval_mode(retrieval: str, kind: str) -> None:
    rag = _rag(retrieval=retrieval)
    rag.add(
        Document(text="Error code E4711 means the disk is full.", source="errors.md"),
        Document(text="Lunch is served at noon in the canteen.", source="lunch.md"),
    )
    assert type(rag.qa.retriever).__name__ == kind
    assert rag.stats()["retrieval"] == retrieval
    assert (rag.keyword is None) == (retrieval == "dense")
    if retrieval != "dense":  # exact codes are what keyword search adds
        assert [h.chunk.source for h in rag.retrieve("E4711", k=1)] == ["errors.md"]


def test_default_retrieval_is_hybrid(docs: Path) -> None:
    from ragkit.retrieval import HybridRetriever

    rag = _rag()
    assert isinstance(rag.qa.retriever, HybridRetriever)
    assert rag.retrieval == "hybrid"
    custom = _rag(retriever=rag.qa.retriever)
    assert custom.retrieval == "custom"
    assert custom.keyword is None


def test_unknown_retrieval_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown retrieval"):
        _rag(retrieval="sparse")


def test_keyword_index_follows_adds_changes_and_deletes(docs: Path) -> None:
    rag = _rag(retrieval="keyword")
    rag.add(docs)
    assert rag.keyword is not None
    assert rag.keyword.ids() == rag.store.ids()
    pool = str(docs / "pool.txt")
    assert rag.retrieve("twenty connections", k=1)[0].chunk.source == pool
    (docs / "pool.txt").write_text("The pool now holds fifty sockets.\n", encoding="utf-8")
    rag.add(docs / "pool.txt")
    assert rag.keyword.ids() == rag.store.ids()
    assert all("twenty" not in h.chunk.text for h in rag.retrieve("twenty connections", k=5))
    assert rag.retrieve("fifty sockets", k=1)[0].chunk.source == pool
    assert rag.delete(pool) > 0
    assert rag.retrieve("fifty sockets", k=5) == []
    assert rag.keyword.ids() == rag.store.ids()


def test_reopened_kb_keeps_its_keyword_index(
    tmp_path: Path, docs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kb = tmp_path / "kb"
    with _rag(kb) as rag:
        rag.add(docs)
        expected = rag.retrieve("teal orange logo", k=3)
    assert (kb / "keyword" / "keyword.sqlite").is_file()
    with caplog.at_level("INFO", logger="ragkit"), _rag(kb) as reopened:
        assert reopened.retrieve("teal orange logo", k=3) == expected
        assert reopened.keyword is not None
        assert reopened.keyword.count() == reopened.store.count()
    assert "re-synced" not in caplog.text  # loaded from disk, not rebuilt


def test_keyword_index_is_rebuilt_when_missing_or_stale(
    tmp_path: Path, docs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kb = tmp_path / "kb"
    with _rag(kb, retrieval="dense") as rag:  # a kb from before keyword search
        rag.add(docs)
        count = rag.store.count()
    assert not (kb / "keyword").exists()
    with caplog.at_level("INFO", logger="ragkit"), _rag(kb, retrieval="keyword") as rag:
        assert rag.keyword is not None
        assert rag.keyword.count() == count
        assert rag.retrieve("teal", k=1)[0].chunk.text.startswith("The logo")
    assert f"{count} chunks added" in caplog.text
    with _rag(kb, retrieval="dense") as rag:  # writes the keyword index does not see
        assert rag.delete(docs / "nested" / "deeper" / "colors.txt") == 1
    with _rag(kb, retrieval="keyword") as rag:
        assert rag.keyword is not None
        assert rag.keyword.ids() == rag.store.ids()
        assert rag.retrieve("teal", k=3) == []
    (kb / "keyword" / "keyword.sqlite").write_bytes(b"garbage" * 1000)
    with _rag(kb, retrieval="keyword") as rag:
        assert rag.keyword is not None
        assert rag.keyword.ids() == rag.store.ids()


def test_keyword_scope_document_scores_chunks_by_their_whole_document() -> None:
    chunker = RecursiveChunker(chunk_size=30, chunk_overlap=0, length="characters")
    text = "Zebras graze on the savanna. Lions hunt them at dawn near rivers."
    rag = RAG(
        embedder=FakeEmbedder(), chunker=chunker, retrieval="keyword", keyword_scope="document"
    )
    rag.add(Document(text=text, source="wild.txt"), Document(text="Cats sleep.", source="c.txt"))
    hits = rag.retrieve("zebras lions", k=5)
    wild = [h for h in hits if h.chunk.source == "wild.txt"]
    assert len(wild) >= 2  # every chunk of the document matches, not only the one with the words
    assert len({round(h.score, 6) for h in wild}) == 1
    with pytest.raises(ConfigurationError, match="keyword_scope"):
        RAG(embedder=FakeEmbedder(), keyword_scope="paragraph")


def test_keyword_scope_auto_is_the_default_and_spares_long_documents() -> None:
    chunker = RecursiveChunker(chunk_size=30, chunk_overlap=0, length="characters")
    rag = RAG(embedder=FakeEmbedder(), chunker=chunker, retrieval="keyword")
    assert rag.keyword is not None
    assert rag.keyword.scope == "auto"
    short = "Zebras graze on the savanna. Lions hunt them at dawn near rivers."
    rag.add(Document(text=short, source="wild.txt"), Document(text="Cats sleep.", source="c.txt"))
    # A short document is scored whole: its chunk without the words matches too.
    assert len([h for h in rag.retrieve("zebras", k=5) if h.chunk.source == "wild.txt"]) >= 2
    # A long one (far more than 7 chunks) is scored chunk by chunk.
    filler = " ".join(f"Paragraph {i} talks about nothing much at all." for i in range(40))
    rag.add(Document(text=f"{filler} Okapis live in the Ituri forest.", source="long.txt"))
    hits = [h for h in rag.retrieve("okapis", k=10) if h.chunk.source == "long.txt"]
    assert len(hits) == 1
    assert "Okapis" in hits[0].chunk.text


def test_fetch_k_reaches_the_reranker(tmp_path: Path) -> None:
    seen: list[int] = []

    class Recording:
        def rerank(self, query: str, hits: list[ScoredChunk], k: int) -> list[ScoredChunk]:
            seen.append(len(hits))
            return list(hits)[:k]

    texts = [f"Note {i}: the parser handles case {i} of the grammar." for i in range(8)]
    documents = [Document(text, f"n{i}.txt") for i, text in enumerate(texts)]
    for fetch_k, expected in ((3, 3), (None, 4)):  # None: RetrievalQA's 4 * k
        seen.clear()
        with RAG(
            tmp_path / f"kb-{fetch_k}",
            store="memory",
            embedder=FakeEmbedder(),
            reranker=Recording(),
            fetch_k=fetch_k,
            k=1,
        ) as rag:
            rag.add(documents)
            assert len(rag.retrieve("parser grammar case")) == 1
        assert seen == [expected]


def test_retrieved_hits_render_in_a_notebook() -> None:
    from ragkit.types import Hits

    rag = _rag()
    rag.add(Document(text="Timeouts default to <b>5 s</b>.", source="t.md"))
    hits = rag.retrieve("timeout default", k=2)
    assert isinstance(hits, Hits)
    assert isinstance(hits, list)
    html = hits._repr_html_()
    assert "t.md" in html
    assert "<b>5 s</b>" not in html  # document text is escaped
