"""Incremental indexing: the record, skip/update/delete/sync, batches, the report."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ragkit import RAG, Document
from ragkit.backends.base import Batch, Change
from ragkit.backends.local import IndexRecord, KnowledgeBaseLock
from ragkit.chunking import RecursiveChunker
from ragkit.cli.main import main
from ragkit.errors import ConfigurationError, KnowledgeBaseLockedError
from ragkit.testing import FakeEmbedder

FILES = {
    "a.txt": "Alpha bravo charlie delta echo foxtrot golf hotel india juliet.\n",
    "b.md": "# Kilo\n\nLima mike november oscar papa quebec romeo sierra.\n",
    "sub/c.txt": "Tango uniform victor whiskey xray yankee zulu, again and again.\n",
}


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _chunker(size: int = 40) -> RecursiveChunker:
    return RecursiveChunker(chunk_size=size, chunk_overlap=5, length="characters")


def _rag(kb: Path | None, embedder: FakeEmbedder | None = None, **kwargs: object) -> RAG:
    kwargs.setdefault("chunker", _chunker())
    return RAG(kb, embedder=embedder or FakeEmbedder(), store="memory", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    _write(folder, FILES)
    return folder


def _by_source(rag: RAG) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for chunk in rag.store.get(rag.store.ids()):
        out.setdefault(chunk.source, []).append(chunk.id)
    return {s: sorted(ids) for s, ids in out.items()}


def _consistent(rag: RAG) -> None:
    """Store, keyword index and record name exactly the same chunks, per source."""
    entries = rag.record.entries()
    assert all(e.state == "done" for e in entries.values())
    assert {s: list(e.chunk_ids) for s, e in entries.items()} == _by_source(rag)
    assert rag.keyword is not None
    assert rag.keyword.ids() == rag.store.ids()


def test_unchanged_files_are_skipped_without_loading_or_embedding(
    tmp_path: Path, docs: Path
) -> None:
    embedder = FakeEmbedder()
    with _rag(tmp_path / "kb", embedder) as rag:
        first = rag.add(docs)
        assert len(first.added) == 3
        embedded = embedder.texts_embedded
    loads: list[Path] = []

    class CountingLoader:
        def load(self, path: Path) -> list[Document]:
            loads.append(path)
            raise AssertionError("an unchanged file was loaded")

    with _rag(tmp_path / "kb", embedder, loader=CountingLoader()) as rag:
        again = rag.add(docs)
        assert sorted(again.unchanged) == sorted(first.added)
        assert (again.added, again.updated, again.deleted, again.failed) == ((), (), (), ())
        assert again.chunks_added == again.chunks_deleted == 0
        _consistent(rag)
    assert loads == []
    assert embedder.texts_embedded == embedded


def test_hash_is_of_content_not_mtime(tmp_path: Path, docs: Path) -> None:
    rag = _rag(tmp_path / "kb")
    rag.add(docs)
    path = docs / "a.txt"
    path.write_text(FILES["a.txt"], encoding="utf-8")  # rewritten: new mtime, same bytes
    assert rag.add(docs).unchanged == tuple(sorted(rag.record.sources()))


def test_changed_file_is_replaced_and_new_file_added(tmp_path: Path, docs: Path) -> None:
    rag = _rag(tmp_path / "kb")
    rag.add(docs)
    old = set(rag.record.get(str(docs / "a.txt")).chunk_ids)  # type: ignore[union-attr]
    (docs / "a.txt").write_text("Completely new words about zebras.\n", encoding="utf-8")
    _write(docs, {"d.txt": "A fresh file about penguins.\n"})
    report = rag.add(docs)
    assert report.updated == (str(docs / "a.txt"),)
    assert report.added == (str(docs / "d.txt"),)
    assert sorted(report.unchanged) == [str(docs / "b.md"), str(docs / "sub" / "c.txt")]
    assert report.chunks_deleted == len(old)
    assert not old & set(rag.store.ids())
    assert rag.retrieve("zebras", k=1)[0].chunk.source == str(docs / "a.txt")
    _consistent(rag)


def test_sync_deletes_vanished_files_only_under_its_path(tmp_path: Path, docs: Path) -> None:
    other = tmp_path / "other"
    _write(other, {"x.txt": "Outside of the synced folder entirely.\n"})
    rag = _rag(tmp_path / "kb")
    rag.add(docs, other)
    (docs / "sub" / "c.txt").unlink()
    (other / "x.txt").unlink()
    report = rag.sync(docs)
    assert report.deleted == (str(docs / "sub" / "c.txt"),)
    assert report.chunks_deleted > 0
    assert sorted(report.unchanged) == [str(docs / "a.txt"), str(docs / "b.md")]
    assert str(other / "x.txt") in rag.record.sources()  # not under the synced path
    _consistent(rag)
    assert rag.sync(docs).deleted == ()


def test_sync_of_a_vanished_folder_removes_everything_under_it(tmp_path: Path, docs: Path) -> None:
    rag = _rag(tmp_path / "kb")
    rag.add(docs)
    for path in sorted(docs.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    docs.rmdir()
    report = rag.sync(docs)
    assert len(report.deleted) == 3
    assert report.failed == ()
    assert rag.store.count() == 0
    assert rag.record.count() == 0
    _consistent(rag)


def test_sync_prefix_does_not_match_sibling_folders(tmp_path: Path) -> None:
    _write(tmp_path, {"docs/a.txt": "Inside the folder.\n", "docs2/b.txt": "In the sibling.\n"})
    rag = _rag(None)
    rag.add(tmp_path / "docs", tmp_path / "docs2")
    (tmp_path / "docs" / "a.txt").unlink()
    report = rag.sync(tmp_path / "docs")
    assert report.deleted == (str(tmp_path / "docs" / "a.txt"),)
    assert rag.record.sources() == [str(tmp_path / "docs2" / "b.txt")]


def test_delete_removes_chunks_record_and_keywords(tmp_path: Path, docs: Path) -> None:
    rag = _rag(tmp_path / "kb")
    rag.add(docs)
    source = str(docs / "b.md")
    count = len(rag.record.get(source).chunk_ids)  # type: ignore[union-attr]
    assert rag.delete(source) == count > 0
    assert rag.record.get(source) is None
    assert rag.delete(source) == 0
    _consistent(rag)
    assert rag.add(docs).added == (source,)  # re-added after delete


def test_identical_content_in_two_files_is_two_sources(tmp_path: Path) -> None:
    text = "Same words in two files, each with its own chunks.\n"
    _write(tmp_path / "docs", {"one.txt": text, "two.txt": text})
    rag = _rag(tmp_path / "kb")
    report = rag.add(tmp_path / "docs")
    assert len(report.added) == 2
    one, two = (rag.record.get(str(tmp_path / "docs" / n)) for n in ("one.txt", "two.txt"))
    assert one is not None
    assert two is not None
    assert one.content_hash == two.content_hash
    assert not set(one.chunk_ids) & set(two.chunk_ids)
    rag.delete(str(tmp_path / "docs" / "one.txt"))
    assert rag.record.sources() == [str(tmp_path / "docs" / "two.txt")]
    assert {h.chunk.source for h in rag.retrieve("same words", k=10)} == {
        str(tmp_path / "docs" / "two.txt")
    }
    _consistent(rag)


def test_changing_chunker_settings_rechunks(tmp_path: Path, docs: Path) -> None:
    kb = tmp_path / "kb"
    with _rag(kb, chunker=_chunker(40)) as rag:
        rag.add(docs)
        before = set(rag.store.ids())
    with _rag(kb, chunker=_chunker(25)) as rag:
        report = rag.add(docs)
        assert len(report.updated) == 3
        assert report.unchanged == ()
        after = set(rag.store.ids())
        assert after != before
        assert len(after) > len(before)  # smaller chunks, more of them
        _consistent(rag)
        assert rag.add(docs).unchanged == tuple(sorted(rag.record.sources()))


def _documents(n: int) -> list[Document]:
    return [
        Document(text=f"Document number {i} talks about topic {i % 7}.", source=f"doc://{i}")
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [1, 100, 101, 1000])
def test_batches_of_any_size_behave_the_same(n: int) -> None:
    results = []
    for batch_size in (1, 100, 256, 5000):
        rag = _rag(None)
        rag.indexer.batch_size = batch_size
        report = rag.add(_documents(n))
        assert len(report.added) == n
        assert report.chunks_added == rag.store.count() == rag.record.count() == n
        again = rag.add(_documents(n))
        assert len(again.unchanged) == n
        assert again.chunks_added == 0
        _consistent(rag)
        results.append((rag.store.ids(), rag.record.entries()))
    assert all(r == results[0] for r in results)


def test_documents_are_hashed_by_text_and_metadata() -> None:
    rag = _rag(None)
    rag.add(Document(text="Lunch is at noon.", source="wiki://lunch", metadata={"v": 1}))
    report = rag.add(Document(text="Lunch is at noon.", source="wiki://lunch", metadata={"v": 2}))
    assert report.updated == ("wiki://lunch",)
    assert rag.store.get(rag.store.ids())[0].metadata["v"] == 2
    again = rag.add(Document(text="Lunch is at noon.", source="wiki://lunch", metadata={"v": 2}))
    assert again.unchanged == ("wiki://lunch",)
    _consistent(rag)


def test_a_file_that_breaks_keeps_its_previous_chunks(tmp_path: Path, docs: Path) -> None:
    rag = _rag(tmp_path / "kb")
    rag.add(docs)
    (docs / "a.txt").write_bytes(b"")
    report = rag.add(docs)
    assert [f.source for f in report.failed] == [str(docs / "a.txt")]
    assert rag.retrieve("alpha bravo", k=1)[0].chunk.source == str(docs / "a.txt")
    _consistent(rag)


def test_report_string_names_every_outcome(tmp_path: Path, docs: Path) -> None:
    rag = _rag(tmp_path / "kb")
    rag.add(docs)
    (docs / "sub" / "c.txt").unlink()
    text = str(rag.sync(docs))
    assert "unchanged 2" in text
    assert "deleted 1" in text


def test_a_kb_without_a_record_is_adopted(tmp_path: Path, docs: Path) -> None:
    kb = tmp_path / "kb"
    embedder = FakeEmbedder()
    with _rag(kb, embedder) as rag:
        rag.add(docs)
        ids = rag.store.ids()
    (kb / "index.sqlite").unlink()  # as written by a ragkit without the record
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (kb / extra).unlink(missing_ok=True)
    with _rag(kb, embedder) as rag:
        assert len(rag.record.sources()) == 3
        report = rag.add(docs)
        assert len(report.unchanged) == 3
        assert report.chunks_added == 0
        assert rag.store.ids() == ids
        _consistent(rag)
        assert all(e.content_hash for e in rag.record.entries().values())


def test_writes_that_bypassed_the_record_are_adopted(tmp_path: Path, docs: Path) -> None:
    kb = tmp_path / "kb"
    with _rag(kb) as rag:  # as an older ragkit would: the store changes, the record not
        rag.add(docs)
        a = str(docs / "a.txt")
        rag.store.delete(list(rag.record.get(a).chunk_ids))  # type: ignore[union-attr]
        stray = Document(text="Written without the record.", source="doc://stray")
        chunks = rag.chunker.split(stray)
        rag.store.upsert(chunks, rag.embedder.embed_documents([c.text for c in chunks]))
    with _rag(kb) as rag:
        assert rag.record.get(a) is None
        assert rag.record.get("doc://stray") is not None
        _consistent(rag)
        assert rag.add(docs).added == (a,)
        _consistent(rag)


def test_interrupted_write_is_rolled_back_or_forward(tmp_path: Path, docs: Path) -> None:
    kb = tmp_path / "kb"
    with _rag(kb) as rag:
        rag.add(docs)
        a, b = str(docs / "a.txt"), str(docs / "b.md")
        entry_a, entry_b = rag.record.get(a), rag.record.get(b)
        assert entry_a is not None
        assert entry_b is not None
        # a: new chunks never reached the store -> roll back to the old ones.
        # b: deleting it was interrupted after the record said so -> roll forward.
        rag.backend.write(
            Batch(
                begin=[
                    Change(a, "sha256:new", entry_a.settings_hash, ("missing",), entry_a.chunk_ids),
                    Change(b, entry_b.content_hash, "", (), entry_b.chunk_ids),
                ]
            )
        )
    with _rag(kb) as rag:
        assert rag.record.pending() == []
        rolled_back = rag.record.get(a)
        assert rolled_back is not None
        assert rolled_back.content_hash == ""
        assert rolled_back.chunk_ids == entry_a.chunk_ids
        assert rag.record.get(b) is None
        assert not set(entry_b.chunk_ids) & set(rag.store.ids())
        _consistent(rag)
        report = rag.add(docs)
        assert report.added == (b,)
        assert report.unchanged == (a, str(docs / "sub" / "c.txt"))
        _consistent(rag)


def test_a_second_writer_gets_a_clear_lock_error(tmp_path: Path, docs: Path) -> None:
    kb = tmp_path / "kb"
    with _rag(kb) as rag:
        rag.add(docs)
    other = KnowledgeBaseLock(kb)
    with other.hold(), _rag(kb) as rag:
        assert rag.retrieve("alpha", k=1)  # reading needs no lock
        with pytest.raises(KnowledgeBaseLockedError, match=r"\.lock"):
            rag.add(docs)
        with pytest.raises(KnowledgeBaseLockedError):
            rag.delete(str(docs / "a.txt"))
    with _rag(kb) as rag:  # released
        assert rag.sync(docs).unchanged


def test_record_from_a_newer_ragkit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    IndexRecord(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'format'")
    db.close()
    with pytest.raises(ConfigurationError, match="upgrade ragkit"):
        IndexRecord(path)


def test_cli_sync_prints_the_report(
    tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ragkit.rag

    monkeypatch.setattr(
        ragkit.rag.RAG,
        "__init__",
        _patched_init(ragkit.rag.RAG.__init__),
    )
    kb = str(tmp_path / "kb")
    assert main(["sync", str(docs), "--kb", kb, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["added"]) == 3
    (docs / "a.txt").unlink()
    assert main(["sync", str(docs), "--kb", kb]) == 0
    out = capsys.readouterr().out
    assert "deleted 1" in out
    assert "unchanged 2" in out


def _patched_init(original):  # type: ignore[no-untyped-def]
    def init(self, path=None, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["embedder"] = FakeEmbedder()
        kwargs["store"] = "memory"
        return original(self, path, **kwargs)

    return init
