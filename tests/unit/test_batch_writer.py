"""Batches are written on a background thread while the next one is embedded."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from ragkit.chunking import RecursiveChunker
from ragkit.errors import StoreError
from ragkit.indexing import Indexer, IndexRecord
from ragkit.loaders import AutoLoader
from ragkit.stores import MemoryStore
from ragkit.testing import FakeEmbedder
from ragkit.types import Chunk, Document

# Three documents of one chunk each; with batch_size=1 every document is its own batch.
DOCUMENTS = [
    Document(id=f"d{i}", source=f"doc{i}.txt", text=f"Document {i} is about topic {i}.")
    for i in range(3)
]


class SignallingEmbedder(FakeEmbedder):
    """Sets ``second`` when it starts embedding the second batch; fails on ``fail_on``."""

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__()
        self.batches = 0
        self.second = threading.Event()
        self.fail_on = fail_on

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.batches += 1
        if self.batches == 2:
            self.second.set()
        if self.batches == self.fail_on:
            raise RuntimeError("the model ran out of memory")
        return super().embed_documents(texts)


class WaitingStore(MemoryStore):
    """Its first upsert waits (up to 10 s) for the second batch's embedding to start."""

    def __init__(self, second: threading.Event) -> None:
        super().__init__()
        self.second = second
        self.overlapped: bool | None = None

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        if self.overlapped is None:
            self.overlapped = self.second.wait(timeout=10)
        super().upsert(chunks, embeddings)


class FailingStore(MemoryStore):
    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        raise StoreError("disk full")


def indexer(embedder: FakeEmbedder, store: MemoryStore, record: IndexRecord) -> Indexer:
    chunker = RecursiveChunker(chunk_size=200, chunk_overlap=0, length="characters")
    return Indexer(AutoLoader(), chunker, embedder, store, record=record, batch_size=1)


def test_the_next_batch_is_embedded_while_the_last_is_written() -> None:
    embedder = SignallingEmbedder()
    store = WaitingStore(embedder.second)
    report = indexer(embedder, store, IndexRecord()).add(DOCUMENTS)
    assert store.overlapped  # one thread would have waited for itself, in vain
    assert report.chunks_added == 3
    assert store.count() == 3


def test_a_write_error_comes_out_of_add() -> None:
    record = IndexRecord()
    with pytest.raises(StoreError, match="disk full"):
        indexer(FakeEmbedder(), FailingStore(), record).add(DOCUMENTS)
    assert not [e for e in record.entries().values() if e.state == "done"]


def test_an_embedding_error_leaves_the_batch_in_flight_written() -> None:
    embedder = SignallingEmbedder(fail_on=2)
    store, record = MemoryStore(), IndexRecord()
    with pytest.raises(RuntimeError, match="out of memory"):
        indexer(embedder, store, record).add(DOCUMENTS)
    # add() returned only after the first batch's writes: written and recorded whole
    assert store.count() == 1
    assert [s for s, e in record.entries().items() if e.state == "done"] == ["doc0.txt"]
