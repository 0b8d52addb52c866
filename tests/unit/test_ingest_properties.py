"""Property tests: loaders on arbitrary bytes; any sequence of writes equals a clean build."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragkit import RAG, Document
from ragkit.chunking import RecursiveChunker
from ragkit.errors import LoaderError
from ragkit.loaders import AutoLoader
from ragkit.testing import FakeEmbedder

SUFFIXES = (".txt", ".md", ".csv", ".json", ".html", ".pdf", ".docx", "")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048), suffix=st.sampled_from(SUFFIXES))
def test_any_bytes_load_or_fail_with_a_loader_error(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"file{suffix}"
        path.write_bytes(data)
        error: LoaderError | None = None
        try:
            docs = AutoLoader().load(path)
        except LoaderError as exc:
            error = exc
    if error is not None:
        assert error.reason
        assert error.source == str(path)
        return
    for doc in docs:
        assert doc.text.strip()
        for page in doc.pages:
            assert 0 <= page.start <= page.end <= len(doc.text)


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300
    ).filter(lambda t: "\x00" not in t and not t.startswith("\ufeff")),
    encoding=st.sampled_from(("utf-8", "utf-8-sig", "utf-16", "utf-32")),
)
def test_text_round_trips_through_any_unicode_encoding(text: str, encoding: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "note.txt"
        path.write_bytes(text.encode(encoding))
        try:
            docs = AutoLoader().load(path)
        except LoaderError:
            return  # whitespace only, or control characters read as binary
    if docs[0].metadata.get("format") == "text":  # (not sniffed as JSON, HTML, ...)
        assert docs[0].text == text


_names = st.sampled_from(["doc://a", "doc://b", "doc://c", "doc://d"])
_words = st.lists(st.sampled_from(["alpha", "bravo", "charlie", "delta", "echo"]), min_size=1)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), _names, _words.map(" ".join)),
        st.tuples(st.just("delete"), _names, st.just("")),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(ops=_ops, batch_size=st.sampled_from((1, 3, 256)))
def test_any_sequence_of_writes_equals_a_clean_build(
    ops: list[tuple[str, str, str]], batch_size: int
) -> None:
    chunker = RecursiveChunker(chunk_size=20, chunk_overlap=4, length="characters")
    rag = RAG(store="memory", embedder=FakeEmbedder(), chunker=chunker, verify=False)
    rag.indexer.batch_size = batch_size
    current: dict[str, str] = {}
    for op, source, text in ops:
        if op == "add":
            rag.add(Document(text=text, source=source))
            current[source] = text
        else:
            rag.delete(source)
            current.pop(source, None)
    clean = RAG(store="memory", embedder=FakeEmbedder(), chunker=chunker, verify=False)
    clean.add([Document(text=t, source=s) for s, t in current.items()])
    assert rag.store.ids() == clean.store.ids()
    assert rag.keyword is not None
    assert clean.keyword is not None
    assert rag.keyword.ids() == clean.keyword.ids()
    assert rag.record.entries() == clean.record.entries()
