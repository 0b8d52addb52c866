"""One RAG object: readers on many threads while it indexes; a second writer process."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from ragkit import RAG, Answer, ScoredChunk
from ragkit.chunking import RecursiveChunker
from ragkit.testing import FakeEmbedder

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"
READERS = 8
WORDS = [
    "harbor",
    "lantern",
    "meadow",
    "copper",
    "violet",
    "summit",
    "orchard",
    "glacier",
    "canyon",
    "ember",
]


def _write_version(folder: Path, version: int, count: int) -> None:
    """Files of one short chunk each; every text names its version."""
    for i in range(count):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(5))
        (folder / f"f{i:03d}.txt").write_text(
            f"Version{version} file {i}: {words}.\n", encoding="utf-8"
        )


def _rag(kb: Path, embedder: FakeEmbedder | None = None, **kwargs: object) -> RAG:
    chunker = RecursiveChunker(chunk_size=200, chunk_overlap=0, length="characters")
    return RAG(kb, store="faiss", embedder=embedder or FakeEmbedder(), chunker=chunker, **kwargs)  # type: ignore[arg-type]


def _check_hits(hits: list[ScoredChunk], k: int) -> None:
    assert len(hits) <= k
    versions: dict[str, set[str]] = {}
    for hit in hits:
        assert isinstance(hit, ScoredChunk)
        assert math.isfinite(hit.score)
        chunk = hit.chunk
        assert chunk.text
        assert chunk.end - chunk.start == len(chunk.text)
        versions.setdefault(chunk.source, set()).add(chunk.text.split()[0])
    torn = {s: v for s, v in versions.items() if len(v) > 1}
    assert not torn, f"old and new chunks of one file in one result: {torn}"
    ids = [h.chunk.id for h in hits]
    assert len(ids) == len(set(ids)), "a chunk twice in one result"


def test_eight_readers_during_an_ingest(tmp_path: Path) -> None:
    folder, kb = tmp_path / "docs", tmp_path / "kb"
    folder.mkdir()
    _write_version(folder, 1, 60)
    rag = _rag(kb, verify=False)
    rag.add(folder)
    _write_version(folder, 2, 300)  # 60 files change, 240 are new
    rag.indexer.batch_size = 8  # many small batches: many chances to interleave

    done = threading.Event()
    errors: list[BaseException] = []
    counts = [0] * READERS

    def reader(n: int) -> None:
        try:
            while not done.is_set() or counts[n] < 25:
                query = f"{WORDS[(n + counts[n]) % len(WORDS)]} {WORDS[n]}"
                if counts[n] % 3 == 2:
                    answer = rag.ask(query, k=4)
                    assert isinstance(answer, Answer)
                    _check_hits(list(answer.contexts), 4)
                    markers = {c.marker for c in answer.citations}
                    assert markers <= set(range(1, len(answer.contexts) + 1))
                else:
                    _check_hits(rag.retrieve(query, k=20), 20)
                counts[n] += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    for t in threads:
        t.start()
    try:
        report = rag.sync(folder)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors[0]
    assert report.ok
    assert len(report.updated) == 60
    assert len(report.added) == 240
    assert sum(counts) >= READERS * 25
    assert rag.keyword is not None
    assert rag.keyword.ids() == rag.store.ids()
    assert rag.store.count() == 300
    rag.close()


class _BlockingEmbedder(FakeEmbedder):
    """Blocks its first ``embed_documents`` call until released (the writer is mid-add)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.started.set()
        assert self.release.wait(timeout=60)
        return super().embed_documents(texts)


SECOND_WRITER = textwrap.dedent(
    """
    import sys
    from ragkit import RAG
    from ragkit.chunking import RecursiveChunker
    from ragkit.errors import KnowledgeBaseLockedError
    from ragkit.testing import FakeEmbedder

    chunker = RecursiveChunker(chunk_size=200, chunk_overlap=0, length="characters")
    rag = RAG(sys.argv[1], store="faiss", embedder=FakeEmbedder(), chunker=chunker)
    print("hits", len(rag.retrieve("harbor lantern", k=3)))
    try:
        rag.add(sys.argv[2])
    except KnowledgeBaseLockedError as exc:
        print("locked:", exc)
        sys.exit(3)
    """
)


def test_a_second_writer_process_gets_the_lock_error(tmp_path: Path) -> None:
    folder, kb = tmp_path / "docs", tmp_path / "kb"
    folder.mkdir()
    _write_version(folder, 1, 10)
    with _rag(kb) as rag:
        rag.add(folder)
    _write_version(folder, 2, 20)
    embedder = _BlockingEmbedder()
    rag = _rag(kb, embedder)
    writer = threading.Thread(target=rag.sync, args=(folder,))
    writer.start()
    try:
        assert embedder.started.wait(timeout=30)
        script = tmp_path / "second.py"
        script.write_text(SECOND_WRITER, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(script), str(kb), str(folder)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
    finally:
        embedder.release.set()
        writer.join(timeout=60)
    assert result.returncode == 3, result.stderr
    assert "hits 3" in result.stdout  # reading while another process writes is fine
    assert "locked:" in result.stdout
    assert str(kb / ".lock") in result.stdout
    assert rag.store.count() == 20  # the first writer finished undisturbed
    rag.close()
