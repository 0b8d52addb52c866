"""Big files indexed a window at a time: exact offsets, incremental updates, crashes."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from ragkit.backends.local import IndexRecord, LocalBackend
from ragkit.chunking import RecursiveChunker
from ragkit.errors import LoaderError, NoTextError, UnsupportedFormatError
from ragkit.indexing import Indexer
from ragkit.loaders import AutoLoader, TextLoader, walk
from ragkit.loaders.text import form_feed_pages
from ragkit.stores import MemoryStore
from ragkit.testing import FakeEmbedder
from ragkit.types import Chunk, Document, document_id

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
]


def _text(seed: int, paragraphs: int = 60) -> str:
    rng = random.Random(seed)
    return "".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 30)))
        + rng.choice(["\n\n", "\n", " ", "\f\n"])
        for _ in range(paragraphs)
    )


def _indexer(
    window: int = 200,
    store: MemoryStore | None = None,
    record: IndexRecord | None = None,
    embedder: FakeEmbedder | None = None,
    batch_size: int = 256,
) -> Indexer:
    loader = AutoLoader({"text": TextLoader(window=window)})
    chunker = RecursiveChunker(chunk_size=50, chunk_overlap=8, length="characters")
    return Indexer(
        loader,
        chunker,
        embedder or FakeEmbedder(),
        LocalBackend(store=store or MemoryStore(), record=record),
        batch_size=batch_size,
    )


def _chunks(indexer: Indexer) -> list[Chunk]:
    return sorted(indexer.store.get(indexer.store.ids()), key=lambda c: c.start)


# -- the loader --------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "cp1252", "utf-8-sig"])
def test_windows_join_to_the_whole_text(tmp_path: Path, encoding: str) -> None:
    text = _text(1).replace("golf", "gölf\u00e9")
    path = tmp_path / "big.txt"
    path.write_text(text, encoding=encoding)
    windows = TextLoader(window=150).windows(path)
    assert windows is not None
    pieces = list(windows)
    assert len(pieces) > 5
    assert "".join(doc.text for _, doc in pieces) == text
    assert [offset for offset, _ in pieces] == [
        sum(len(d.text) for _, d in pieces[:i]) for i in range(len(pieces))
    ]
    for _, doc in pieces:
        assert doc.id == document_id(str(path))
        assert len(doc.text) <= 150 + 2**20  # a window, not the file
    # Cut after a line break or space whenever the window's second half has one.
    assert all(doc.text[-1] in "\n " for _, doc in pieces[:-1])


def test_window_pages_are_numbered_as_in_the_whole_text(tmp_path: Path) -> None:
    text = _text(2)
    assert "\f" in text
    path = tmp_path / "paged.txt"
    path.write_text(text, encoding="utf-8")
    whole = Document(text=text, source=str(path), pages=form_feed_pages(text))
    for offset, doc in TextLoader(window=120).windows(path) or ():
        for i, char in enumerate(doc.text):
            if not char.isspace() and char != "\f":
                page, expected = doc.page_at(i), whole.page_at(offset + i)
                assert page is not None
                assert expected is not None
                assert page.number == expected.number


def test_small_files_are_loaded_whole(tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_text("short\n", encoding="utf-8")
    assert TextLoader(window=100).windows(path) is None
    assert AutoLoader().windows(path) is None


def test_only_text_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.md"
    path.write_text("# Title\n\n" + _text(3), encoding="utf-8")
    assert AutoLoader({"text": TextLoader(window=64)}).windows(path) is None


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (bytes(range(256)) * 4, UnsupportedFormatError, "binary"),
        (b" \n\t" * 200, NoTextError, "empty"),
        (
            b"\xff\xfe" + "ok text ".encode("utf-16-le") * 40 + b"\x00\xd8",
            UnsupportedFormatError,
            "byte-order mark",
        ),
    ],
)
def test_bad_big_files_fail_before_the_first_window(
    tmp_path: Path, data: bytes, error: type[LoaderError], words: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(error, match=words):
        TextLoader(window=64).windows(path)


def test_invalid_utf8_late_in_the_file_decodes_all_of_it_as_cp1252(tmp_path: Path) -> None:
    text = "plain ascii words " * 100 + "caf\xe9"
    path = tmp_path / "late.txt"
    path.write_bytes(text.encode("cp1252"))
    pieces = list(TextLoader(window=100).windows(path) or ())
    assert "".join(d.text for _, d in pieces) == text
    assert pieces[0][1].metadata["encoding"] == "cp1252"


# -- the indexer -------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), window=st.integers(64, 400))
def test_streamed_chunks_point_into_the_whole_file(seed: int, window: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.txt"
        text = _text(seed, paragraphs=30)
        path.write_text(text, encoding="utf-8")
        indexer = _indexer(window)
        report = indexer.add([path])
        chunks = _chunks(indexer)
    assert report.added == (str(path),)
    assert chunks, text
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert len({c.id for c in chunks}) == len(chunks)
    assert {c.document_id for c in chunks} == {document_id(str(path))}
    assert [c.metadata["chunk_index"] for c in chunks] == list(range(len(chunks)))
    # Every word of the file is in a chunk.
    covered = np.zeros(len(text), dtype=bool)
    for c in chunks:
        covered[c.start : c.end] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())


def test_a_streamed_file_is_incremental(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text(_text(4), encoding="utf-8")
    embedder = FakeEmbedder()
    indexer = _indexer(embedder=embedder)
    first = indexer.add([tmp_path])
    assert first.added == (str(path),)
    assert first.chunks_added > 10
    assert indexer.record.chunk_total() == indexer.store.count()

    embedded = embedder.texts_embedded
    again = indexer.add([tmp_path])
    assert again.unchanged == (str(path),)
    assert embedder.texts_embedded == embedded

    text = path.read_text(encoding="utf-8")
    path.write_text(text + "\n\nzulu yankee xray at the end\n", encoding="utf-8")
    changed = indexer.add([tmp_path])
    assert changed.updated == (str(path),)
    assert 0 < changed.chunks_added < first.chunks_added  # the start is unchanged
    new_text = path.read_text(encoding="utf-8")
    chunks = _chunks(indexer)
    assert all(new_text[c.start : c.end] == c.text for c in chunks)
    entry = indexer.record.get(str(path))
    assert entry is not None
    assert sorted(c.id for c in chunks) == list(entry.chunk_ids)

    path.unlink()
    gone = indexer.sync(tmp_path)
    assert gone.deleted == (str(path),)
    assert indexer.store.count() == 0
    assert indexer.record.count() == 0


class Crash(BaseException):
    """The process dying mid-write: nothing after it runs, no handler catches it."""


class CrashingEmbedder(FakeEmbedder):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if self.calls >= self.after:
            raise Crash
        return super().embed_documents(texts)


@pytest.mark.parametrize("after", [1, 3, 6])
def test_a_crash_mid_stream_keeps_the_old_version_and_converges(tmp_path: Path, after: int) -> None:
    path = tmp_path / "docs" / "big.txt"
    path.parent.mkdir()
    path.write_text(_text(5), encoding="utf-8")
    store, record = MemoryStore(), IndexRecord(tmp_path / "index.sqlite")
    _indexer(store=store, record=record, batch_size=8).add([path.parent])
    old = {c.id for c in _chunks(_indexer(store=store, record=record))}

    path.write_text(_text(6), encoding="utf-8")
    with pytest.raises(Crash):
        _indexer(store=store, record=record, embedder=CrashingEmbedder(after), batch_size=8).add(
            [path.parent]
        )
    assert set(store.ids()) > old  # new chunks written, old ones still there

    indexer = _indexer(store=store, record=record, batch_size=8)
    assert indexer.recover() == [str(path)]
    assert set(store.ids()) == old  # rolled back to the old version
    report = indexer.add([path.parent])
    assert report.updated == (str(path),)

    clean = _indexer()
    clean.add([path.parent])
    assert store.ids() == clean.store.ids()
    assert record.entries() == clean.record.entries()


def test_a_file_that_breaks_mid_stream_is_reported_and_keeps_its_chunks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.txt"
    path.write_text(_text(7), encoding="utf-8")
    indexer = _indexer()
    indexer.add([path])
    before = indexer.store.ids()

    class BreakingLoader(TextLoader):
        def windows(self, path: Path) -> Iterator[tuple[int, Document]] | None:
            windows = super().windows(path)
            assert windows is not None
            for i, item in enumerate(windows):
                if i == 2:
                    raise LoaderError(str(path), "the disk went away")
                yield item

    path.write_text(_text(8), encoding="utf-8")
    indexer.loader = BreakingLoader(window=200)
    report = indexer.add([path])
    assert [f.source for f in report.failed] == [str(path)]
    assert "the disk went away" in report.failed[0].reason
    assert indexer.store.ids() == before
    assert indexer.record.chunk_total() == len(before)


# -- broken links ------------------------------------------------------------------


def test_broken_links_are_listed_and_reported(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("fine words here\n", encoding="utf-8")
    os.symlink("self.txt", tmp_path / "self.txt")
    os.symlink("nowhere.txt", tmp_path / "dangling.txt")
    os.symlink(tmp_path, tmp_path / "loop")  # a folder loop: walked once, not reported
    assert sorted(p.name for p in walk(tmp_path)) == ["dangling.txt", "good.txt", "self.txt"]

    report = _indexer().add([tmp_path])
    assert report.added == (str(tmp_path / "good.txt"),)
    reasons = {Path(f.source).name: f.reason for f in report.failed}
    assert "symbolic link loop" in reasons["self.txt"]
    assert "dangling symbolic link" in reasons["dangling.txt"]
    assert "nowhere.txt" in reasons["dangling.txt"]


def test_a_folder_that_cannot_be_listed_is_reported_and_its_files_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "open.txt").write_text("open words\n", encoding="utf-8")
    (tmp_path / "shut").mkdir()
    (tmp_path / "shut" / "inside.txt").write_text("inside words\n", encoding="utf-8")
    indexer = _indexer()
    assert len(indexer.sync(tmp_path).added) == 2

    real_scandir = os.scandir

    def scandir(path: Path) -> object:  # root lists any folder: deny this one here
        if Path(path).name == "shut":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = indexer.sync(tmp_path)
    assert [f.source for f in report.failed] == [str(tmp_path / "shut")]
    assert "cannot be listed" in report.failed[0].reason
    assert report.deleted == ()  # not known to be gone: kept
    assert str(tmp_path / "shut" / "inside.txt") in indexer.record.sources()
