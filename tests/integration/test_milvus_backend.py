"""MilvusBackend on a real Milvus Lite server: the record, the manifest, the writers'
lease, and a whole RAG kb at a milvus:// URL."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragkit import RAG
from ragkit.backends import open_backend
from ragkit.backends.base import Batch, Change, KnowledgeBaseBackend, Record, RecordEntry
from ragkit.backends.manifest import Manifest
from ragkit.backends.milvus import MilvusBackend
from ragkit.backends.urls import MilvusSettings, parse_location
from ragkit.errors import EmbedderMismatchError, KnowledgeBaseLockedError
from ragkit.testing import FakeEmbedder, FakeGenerator
from ragkit.testing.store_contract import make_chunk, unit_vectors

pytestmark = pytest.mark.integration

_names = itertools.count()


@pytest.fixture
def url(milvus_url: str) -> str:
    """A kb URL no other test uses, waiting at most half a second for a lease."""
    return f"{milvus_url}?collection=kb{next(_names)}&lock_wait=0.5"


@pytest.fixture
def backend(url: str) -> Iterator[MilvusBackend]:
    opened = open_backend(url)
    assert isinstance(opened, MilvusBackend)
    yield opened
    opened.close()


def test_fits_the_contract(backend: MilvusBackend, url: str) -> None:
    assert isinstance(backend, KnowledgeBaseBackend)
    assert isinstance(backend.record, Record)
    assert backend.name == "milvus"
    assert backend.location == url.split("&", maxsplit=1)[0]


def test_record_follows_the_batch_protocol(backend: MilvusBackend) -> None:
    record = backend.record
    assert record.entries() == {}
    assert record.count() == 0
    assert record.chunk_total() == 0
    chunks = [make_chunk(f"a{i}", source="a.md") for i in range(3)]
    change = Change("a.md", "h1", "s1", tuple(c.id for c in chunks), ())
    backend.write(Batch(begin=[change], upsert=chunks, vectors=unit_vectors(3, 8)))
    pending = record.pending()
    assert [(e.source, e.state, e.chunk_ids) for e in pending] == [
        ("a.md", "pending", ("a0", "a1", "a2"))
    ]
    assert backend.store.count() == 3
    backend.write(Batch(done=["a.md"]))
    assert record.pending() == []
    assert record.get("a.md") == RecordEntry("a.md", "h1", ("a0", "a1", "a2"), "s1")
    backend.write(Batch(put=[RecordEntry("b.md", "h2", ("b0",), "s1")]))
    assert record.sources() == ["a.md", "b.md"]
    assert record.chunk_total() == 4
    backend.write(Batch(delete=["a0", "a1", "a2"], removed=["a.md"]))
    assert record.sources() == ["b.md"]
    assert backend.store.count() == 0
    assert record.get("a.md") is None


def test_an_entry_longer_than_one_row(backend: MilvusBackend) -> None:
    ids = tuple(sorted(f"{i:032x}" for i in range(5000)))  # ~175 kB of JSON: 3 rows
    entry = RecordEntry("dir/big ünïcode.txt", "h", ids, "s")
    backend.write(Batch(put=[entry]))
    assert backend.record.get(entry.source) == entry
    shorter = RecordEntry(entry.source, "h2", ids[:10], "s")
    backend.write(Batch(put=[shorter]))
    assert backend.record.entries() == {entry.source: shorter}


def test_a_write_cut_short_leaves_the_old_entry(backend: MilvusBackend) -> None:
    from ragkit.backends.milvus._record import _digest, row

    old = RecordEntry("a.md", "h1", ("x",), "s")
    backend.write(Batch(put=[old]))
    # A crash after the first of two rows of a new version: that version is ignored.
    src = _digest("a.md")
    part = row(
        f"s:{src}:new:0", "source", '{"source": "a.md", ', src=src, version="new", part=0, parts=2
    )
    backend.store._conn.call("test", "upsert", backend.record.name, [part])
    assert backend.record.get("a.md") == old


def test_manifest_round_trip(backend: MilvusBackend, url: str) -> None:
    assert backend.read_manifest() is None
    manifest = Manifest("fake-hash-16", 16, "milvus", {"chunk_size": 100})
    backend.write_manifest(manifest)
    other = open_backend(url)
    try:
        assert other.read_manifest() == manifest
    finally:
        other.close()


def test_the_lease_keeps_a_second_writer_out(backend: MilvusBackend, url: str) -> None:
    other = open_backend(url)
    try:
        with backend.writing(), backend.writing():  # re-entrant per object
            started = time.monotonic()
            with pytest.raises(KnowledgeBaseLockedError, match="lease"), other.writing():
                pass
            assert time.monotonic() - started >= 0.5
        # Released: the other writer gets it, and now keeps the first one out.
        with other.writing(), pytest.raises(KnowledgeBaseLockedError), backend.writing():
            pass
    finally:
        other.close()


def test_a_waiting_writer_gets_the_lease_when_it_is_released(url: str) -> None:
    settings = parse_location(url.replace("lock_wait=0.5", "lock_wait=10"))
    assert isinstance(settings, MilvusSettings)
    first, second = MilvusBackend(settings), MilvusBackend(settings)
    order: list[str] = []
    try:
        with first.writing():
            waiter = threading.Thread(target=lambda: _write_after(second, order))
            waiter.start()
            time.sleep(0.6)
            order.append("first done")
        waiter.join(timeout=10)
        assert order == ["first done", "second in"]
    finally:
        first.close()
        second.close()


def _write_after(backend: MilvusBackend, order: list[str]) -> None:
    with backend.writing():
        order.append("second in")


def _docs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "timeouts.md").write_text(
        "# Timeouts\n\nThe default request timeout is five seconds. Set XJ9000_TIMEOUT "
        "to change it.\n",
        encoding="utf-8",
    )
    (folder / "pool.md").write_text(
        "# Pool\n\nThe connection pool keeps twenty connections per host.\n", encoding="utf-8"
    )
    (folder / "proxy.txt").write_text(
        "Proxies are configured with the HTTPS_PROXY environment variable.\n", encoding="utf-8"
    )
    return folder


def test_a_rag_kb_in_milvus(tmp_path: Path, url: str) -> None:
    docs = _docs(tmp_path / "docs")
    embedder = FakeEmbedder(dimension=32)
    with RAG(url, embedder=embedder, generator=FakeGenerator(), verify=False) as rag:
        report = rag.add(docs)
        assert not report.failed
        assert rag.stats()["sources"] == 3
        assert rag.stats()["store"] == "milvus"
        answer = rag.ask("How many connections does the pool keep per host?")
        assert answer.citations[0].source.endswith("pool.md")
        # Three documents and noise vectors: the identifier's document may be last on
        # dense and tie at 0.5 with dense's first (test_milvus_store has the proof on
        # 500 chunks); keyword search alone puts it first.
        hits = rag.retrieve("XJ9000_TIMEOUT", k=2)
        assert "timeouts.md" in {Path(h.chunk.source).name for h in hits}
        keyword = rag.backend.retriever("keyword", rag.embedder)
        assert keyword.retrieve("XJ9000_TIMEOUT", k=1)[0].chunk.source.endswith("timeouts.md")
        source = str(docs / "proxy.txt")
        only = rag.retrieve("connections per host", k=3, filters={"source": source})
        assert only
        assert {h.chunk.source for h in only} == {source}
        again = rag.add(docs)
        assert len(again.unchanged) == 3
        assert again.chunks_added == 0
        (docs / "pool.md").write_text("The pool keeps forty connections per host.\n")
        assert rag.add(docs).updated == (str(docs / "pool.md"),)
        (docs / "proxy.txt").unlink()
        synced = rag.sync(docs)
        assert synced.deleted == (source,)
        chunks = rag.stats()["chunks"]
    with RAG(url, embedder=FakeEmbedder(dimension=32), retrieval="keyword") as again:
        assert again.stats()["sources"] == 2
        assert again.stats()["chunks"] == chunks
        assert again.retrieve("HTTPS_PROXY environment", k=3) == []
        hit = again.retrieve("forty connections", k=1)[0]
        assert hit.chunk.source.endswith("pool.md")
        assert "forty" in hit.chunk.text
        assert again.retrieve("twenty", k=3) == []  # the old chunk was replaced
    with pytest.raises(EmbedderMismatchError, match="fake-hash-32"):
        RAG(url, embedder=FakeEmbedder(dimension=16))


def test_an_add_ends_with_its_rows_flushed(tmp_path: Path, url: str, milvus_folder: Path) -> None:
    # Milvus Lite searches rows still in its memtable one by one in Python (seconds per
    # query at 20k chunks); flushed, they are in a segment file with an index.
    name = url.split("collection=")[1].split("&", maxsplit=1)[0]
    segments = milvus_folder / "data" / "collections" / name / "partitions" / "_default" / "data"
    embedder = FakeEmbedder(dimension=32)
    with RAG(url, embedder=embedder, generator=FakeGenerator(), verify=False) as rag:
        rag.add(_docs(tmp_path / "docs"))
        assert list(segments.glob("*.parquet"))
        assert rag.retrieve("XJ9000_TIMEOUT", k=2)


def test_a_writer_whose_lease_was_taken_stops_at_its_next_write(
    backend: MilvusBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from ragkit.backends.milvus import _lease
    from ragkit.backends.milvus._record import row

    monkeypatch.setattr(_lease, "TTL", 0.6)  # renewed every 0.2 s
    with backend.writing():
        backend.write(Batch(put=[RecordEntry("a.md", "h", (), "s")]))
        # Another writer took the lease (as after this one stalled past its expiry).
        taken = json.dumps({"owner": "someone else", "expires": time.time() + 60})
        backend.store._conn.call(
            "test", "upsert", backend.record.name, [row("lease", "lease", taken)]
        )
        time.sleep(0.5)
        with pytest.raises(KnowledgeBaseLockedError, match="expired"):
            backend.write(Batch(put=[RecordEntry("b.md", "h", (), "s")]))
    assert backend.record.sources() == ["a.md"]


def test_a_write_cut_short_is_repaired_on_the_next_open(tmp_path: Path, url: str) -> None:
    docs = _docs(tmp_path / "docs")
    with RAG(url, embedder=FakeEmbedder(dimension=32), verify=False) as rag:
        rag.add(docs)
        before = rag.stats()["chunks"]
        source = str(docs / "pool.md")
        entry = rag.record.get(source)
        assert entry is not None
        # A writer marked pool.md pending for new chunks, wrote one, and died.
        new = make_chunk("new-pool-chunk", "The pool keeps forty connections.", source=source)
        change = Change(source, "h-new", entry.settings_hash, (new.id,), entry.chunk_ids)
        rag.backend.write(Batch(begin=[change], upsert=[new], vectors=unit_vectors(1, 32)))
        assert [e.source for e in rag.record.pending()] == [source]
    with RAG(url, embedder=FakeEmbedder(dimension=32), verify=False) as again:
        assert again.record.pending() == []
        assert again.record.chunk_total() == again.store.count()
        # Its one new chunk was written: the write is rolled forward, the old ones go.
        held = again.record.get(source)
        assert held is not None
        assert held.chunk_ids == (new.id,)
        assert held.state == "done"
        assert again.store.ids({"source": source}) == [new.id]
        assert again.stats()["chunks"] == before - len(entry.chunk_ids) + 1
