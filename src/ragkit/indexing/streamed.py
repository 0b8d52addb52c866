"""Indexing one big file a window at a time (see :class:`ragkit.protocols.StreamingLoader`).

A streamed source cannot follow the batch protocol of the record as it is (mark the
new chunk ids pending, write, mark done): its chunk ids are known only once the last
window is chunked, and its chunks do not fit in memory together. So it is written in
two steps:

1. the record marks the source pending with its *old* chunks as the target and no
   content hash; then each window is chunked, embedded and written (new chunks only).
   A crash here is repaired by rolling back: the chunks of the source that the store
   holds beyond its old ones are removed, and the empty content hash makes the next
   ``add`` index the file again (vectors already computed come from the cache);
2. the record marks it pending with all its new chunk ids (known now) and its old
   ones, the stale old chunks are removed and it is marked done: the ordinary
   protocol, which a crash rolls forward.

Memory holds one window, its chunks and vectors, and the chunk ids of the file (about
100 bytes each), whatever the file's size.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from ragkit.backends.base import Batch, Change
from ragkit.errors import LoaderError
from ragkit.indexing.repair import repair_pending
from ragkit.types import Chunk, Document, FileIssue, chunk_id

if TYPE_CHECKING:
    from ragkit.backends.base import KnowledgeBaseBackend
    from ragkit.indexing._batch import Tally
    from ragkit.protocols import Chunker, Embedder

__all__ = ["shift", "write_streamed"]

logger = logging.getLogger(__name__)

#: Windows of one document: ``(offset in the whole text, document of that window)``.
Windows = Iterator[tuple[int, Document]]


def write_streamed(
    backend: KnowledgeBaseBackend,
    chunker: Chunker,
    embedder: Embedder,
    batch_size: int,
    source: str,
    *,
    digest: str,
    windows: Windows,
    settings: str,
    tally: Tally,
) -> None:
    """Index ``source`` from its windows, replacing its previous chunks; tally the outcome."""
    entry = backend.record.get(source)
    previous = entry.chunk_ids if entry is not None else ()
    backend.write(Batch(begin=[Change(source, "", settings, previous, previous)]))
    wanted: set[str] = set()
    written = index = 0
    while True:
        try:
            offset, window = next(windows)
        except StopIteration:
            break
        except Exception as exc:  # a file failing half-way must not stop the folder
            reason = exc.reason if isinstance(exc, LoaderError) else f"{type(exc).__name__}: {exc}"
            _fail(backend, source, f"could not be read to the end: {reason}", tally)
            return
        chunks = shift(chunker.split(window), offset, index)
        index += len(chunks)
        written += _write(backend, embedder, batch_size, chunks, wanted)
    if not wanted:
        _fail(backend, source, "no text to index (empty after loading)", tally)
        return
    stale = sorted(set(previous) - wanted)
    backend.write(
        Batch(
            begin=[Change(source, digest, settings, tuple(sorted(wanted)), previous)],
            delete=stale,
            done=[source],
        )
    )
    logger.info("indexed %s in %d chunks, streamed", source, len(wanted))
    tally.chunks_added += written
    tally.chunks_deleted += len(stale)
    if entry is None:
        tally.added.append(source)
    elif written or stale:
        tally.updated.append(source)
    else:
        tally.unchanged.append(source)


def shift(chunks: list[Chunk], offset: int, index: int) -> list[Chunk]:
    """Chunks of a window made chunks of the whole text: offsets (and ids) moved by
    ``offset``, ``chunk_index`` (when the chunker sets it) counted from ``index``."""
    out = []
    for i, chunk in enumerate(chunks):
        metadata = chunk.metadata
        if "chunk_index" in metadata:
            metadata = {**metadata, "chunk_index": index + i}
        start = chunk.start + offset
        out.append(
            replace(
                chunk,
                id=chunk_id(chunk.source, start, chunk.text),
                start=start,
                end=chunk.end + offset,
                metadata=metadata,
            )
        )
    return out


def _write(
    backend: KnowledgeBaseBackend,
    embedder: Embedder,
    batch_size: int,
    chunks: list[Chunk],
    wanted: set[str],
) -> int:
    """Embed and write the chunks the store does not hold yet; returns how many."""
    unique = {c.id: c for c in chunks}
    wanted.update(unique)
    stored = {c.id: c for c in backend.store.get(sorted(unique))}
    fresh = [c for c in unique.values() if stored.get(c.id) != c]
    size = max(batch_size, 1)
    for i in range(0, len(fresh), size):
        batch = fresh[i : i + size]
        vectors = embedder.embed_documents([c.text for c in batch])
        backend.write(Batch(upsert=batch, vectors=vectors))
    return len(fresh)


def _fail(backend: KnowledgeBaseBackend, source: str, reason: str, tally: Tally) -> None:
    """Undo the partial write of ``source`` (its previous chunks stay) and report it."""
    entry = backend.record.get(source)
    assert entry is not None  # marked pending by write_streamed
    repair_pending(backend, [entry])
    tally.failed.append(FileIssue(source, reason))
