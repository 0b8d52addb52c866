"""Planning and writing batches for :class:`~ragkit.indexing.Indexer`, and the tally.

A loaded source is *planned* (its chunks compared with what the store and the record
hold, the write it needs queued); queued sources are *flushed* together: embedded, then
written as one :class:`~ragkit.backends.base.Batch` (sources pending, chunks upserted
and stale ones deleted, sources done), which the backend applies in one transaction or
in the record's protocol order that a crash is repaired from.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ragkit.backends.base import Batch, Change, RecordEntry
from ragkit.indexing.repair import held_ids
from ragkit.types import Chunk, Document, FileIssue, IndexReport

if TYPE_CHECKING:
    from ragkit.backends.base import KnowledgeBaseBackend
    from ragkit.protocols import Chunker, Embedder

__all__ = ["Pending", "Tally", "flush", "plan", "remove"]


@dataclass
class Pending:
    source: str
    content_hash: str
    chunks: list[Chunk]  # to write: the ones the store does not hold yet
    wanted: tuple[str, ...]  # every chunk id of the source after the write
    previous: tuple[str, ...]  # every chunk id of the source before it
    existed: bool


@dataclass
class Tally:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[FileIssue] = field(default_factory=list)
    warnings: list[FileIssue] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    unlisted: list[str] = field(default_factory=list)  # folders the walk could not list
    chunks_added: int = 0
    chunks_deleted: int = 0

    def report(self, began: float) -> IndexReport:
        return IndexReport(
            added=tuple(self.added),
            updated=tuple(self.updated),
            unchanged=tuple(self.unchanged),
            deleted=tuple(self.deleted),
            failed=tuple(self.failed),
            warnings=tuple(self.warnings),
            chunks_added=self.chunks_added,
            chunks_deleted=self.chunks_deleted,
            seconds=time.perf_counter() - began,
        )


def plan(
    backend: KnowledgeBaseBackend,
    chunker: Chunker,
    source: str,
    *,
    digest: str,
    docs: list[Document],
    settings: str,
    pending: list[Pending],
    tally: Tally,
) -> int:
    """Queue the write one loaded source needs; returns how many chunks it adds."""
    for doc in docs:
        empty_pages = doc.metadata.get("pages_without_text")
        if empty_pages:
            tally.warnings.append(
                FileIssue(source, f"pages without a text layer were skipped: {empty_pages}")
            )
    chunks = list({c.id: c for doc in docs for c in chunker.split(doc)}.values())
    if not chunks:
        tally.failed.append(FileIssue(source, "no text to index (empty after loading)"))
        return 0
    entry = backend.record.get(source)
    # The record is the list of what the store holds (recover() keeps it so), which
    # spares a scan of the store per file.
    previous = set(entry.chunk_ids if entry else ())
    wanted = tuple(sorted(c.id for c in chunks))
    # A chunk id hashes source, offset and text; metadata (a title, a page label)
    # can change under the same id, so compare the stored chunks too. A source the
    # record does not hold has nothing in the store to compare with (its ids hash its
    # name); were some left there, the upsert would rewrite them, not duplicate them.
    stored = {c.id: c for c in backend.store.get(wanted)} if entry is not None else {}
    fresh = [c for c in chunks if stored.get(c.id) != c]
    if not fresh and previous == set(wanted):
        # Same chunks (e.g. content hash unknown, or a touched file): record only.
        backend.write(Batch(put=[RecordEntry(source, digest, wanted, settings)]))
        tally.unchanged.append(source)
        return 0
    pending.append(
        Pending(source, digest, fresh, wanted, tuple(sorted(previous)), entry is not None)
    )
    return len(fresh)


def flush(
    backend: KnowledgeBaseBackend,
    embedder: Embedder,
    pending: list[Pending],
    tally: Tally,
    settings: str,
) -> None:
    """Embed and write the queued sources as one batch, tally them, empty the queue."""
    if not pending:
        return
    new = [c for p in pending for c in p.chunks]
    # Embed before anything is marked pending: a crash here leaves the kb as it
    # was, and the vectors already computed stay in the embedding cache.
    vectors = embedder.embed_documents([c.text for c in new]) if new else None
    stale = sorted({i for p in pending for i in set(p.previous) - set(p.wanted)})
    backend.write(
        Batch(
            begin=[
                Change(p.source, p.content_hash, settings, p.wanted, p.previous) for p in pending
            ],
            upsert=new,
            vectors=vectors,
            delete=stale,
            done=[p.source for p in pending],
        )
    )
    for p in pending:
        tally.chunks_added += len(p.chunks)
        tally.chunks_deleted += len(set(p.previous) - set(p.wanted))
        (tally.updated if p.existed else tally.added).append(p.source)
    pending.clear()


def remove(backend: KnowledgeBaseBackend, sources: Sequence[str]) -> int:
    """Delete every chunk of ``sources`` and their record entries; returns how many."""
    store, record = backend.store, backend.record
    changes = []
    total = 0
    for source in sources:
        entry = record.get(source)
        ids = set(store.ids({"source": source})) | set(entry.chunk_ids if entry else ())
        total += len(held_ids(store, ids))
        changes.append(Change(source, entry.content_hash if entry else "", "", (), tuple(ids)))
    doomed = sorted({i for c in changes for i in c.previous_ids})
    backend.write(Batch(begin=changes, delete=doomed, removed=list(sources)))
    return total
