"""Load, chunk, embed and store: the ingest side of the pipeline, incremental and crash safe."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ragkit.errors import LoaderError
from ragkit.indexing.record import Change, IndexRecord, RecordEntry, settings_hash
from ragkit.indexing.repair import adopt_store, held_ids, repair_pending
from ragkit.indexing.streamed import Windows, write_streamed
from ragkit.protocols import Chunker, Embedder, Loader, StreamingLoader, VectorStore
from ragkit.types import Chunk, Document, FileIssue, IndexReport

__all__ = ["ChunkIndex", "Indexer", "Source", "content_hash", "document_hash"]

logger = logging.getLogger(__name__)

#: Something ``add`` accepts: a file, a folder, or a ready document.
Source = str | Path | Document

#: Called after each file or document with (what it was, how many done so far).
Progress = Callable[[str, int], None]

_READ_BLOCK = 1 << 20


class ChunkIndex(Protocol):
    """A secondary index fed the same chunks as the store, such as a keyword index."""

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert or replace chunks by id."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        ...


def content_hash(path: Path) -> str:
    """sha256 of the file's bytes, read in 1 MiB blocks (memory stays flat)."""
    h = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_READ_BLOCK):
            h.update(block)
    return "sha256:" + h.hexdigest()


def document_hash(documents: Sequence[Document]) -> str:
    """sha256 of documents' text, metadata and layout (what chunking depends on)."""
    h = hashlib.sha256()
    for doc in documents:
        h.update(doc.text.encode("utf-8", "surrogatepass"))
        layout = {
            "id": doc.id,
            "metadata": doc.metadata,
            "pages": [(p.number, p.start, p.end, p.label) for p in doc.pages],
            "headings": [(x.start, x.level, x.title) for x in doc.headings],
        }
        h.update(json.dumps(layout, sort_keys=True, default=str).encode("utf-8", "replace"))
    return "sha256:" + h.hexdigest()


@dataclass
class _Pending:
    source: str
    content_hash: str
    chunks: list[Chunk]  # to write: the ones the store does not hold yet
    wanted: tuple[str, ...]  # every chunk id of the source after the write
    previous: tuple[str, ...]  # every chunk id of the source before it
    existed: bool


@dataclass
class _Tally:
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


def _chunker_settings(chunker: Chunker) -> dict[str, Any]:
    out: dict[str, Any] = {"class": f"{type(chunker).__module__}.{type(chunker).__qualname__}"}
    for name, value in sorted(getattr(chunker, "__dict__", {}).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, (str, int, float, bool, type(None))):
            out[name] = value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
            out[name] = list(value)
    return out


class Indexer:
    """Turns files and documents into stored chunks, incrementally, and reports it.

    A record (:class:`~ragkit.indexing.record.IndexRecord`) keeps, per source, the hash
    of its content, its chunk ids and the settings that made them. ``add`` skips a
    file whose bytes and settings are unchanged without loading it, replaces the
    chunks of a changed one (new chunks written before stale ones are removed), and
    indexes new ones; ``sync`` also removes sources that vanished from a folder. A
    file that fails to load is reported with its reason and skipped; its previous
    chunks, if any, stay.

    Every batch follows the record's write protocol (pending -> store and keyword ->
    done), so a crash at any moment is repaired by :meth:`recover` on the next write.
    A file the loader streams (see :class:`~ragkit.protocols.StreamingLoader`: plain
    text over 4 MiB) is chunked, embedded and written a window at a time, in memory
    that does not grow with the file (see :mod:`ragkit.indexing.streamed`).

    Example:
        >>> indexer = Indexer(loader, chunker, embedder, store)  # doctest: +SKIP
        >>> report = indexer.add(["docs/"])  # doctest: +SKIP
        >>> report = indexer.sync("docs/")  # doctest: +SKIP

    Args:
        loader: reads one file (``AutoLoader`` picks the format by content).
        chunker: splits documents.
        embedder: embeds chunk texts.
        store: receives chunks and vectors.
        keyword: an index kept in step with ``store`` (same upserts and deletes, in the
            same batch), such as :class:`~ragkit.retrieval.KeywordIndex`.
        record: what is indexed; in memory when not given.
        batch_size: chunks embedded and written together.
        write_guard: called around each batch's store writes (``RAG`` passes the
            write side of its read-write lock, so queries never see half a batch).
    """

    def __init__(
        self,
        loader: Loader,
        chunker: Chunker,
        embedder: Embedder,
        store: VectorStore,
        *,
        keyword: ChunkIndex | None = None,
        record: IndexRecord | None = None,
        batch_size: int = 256,
        write_guard: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.loader = loader
        self.chunker = chunker
        self.embedder = embedder
        self.store = store
        self.keyword = keyword
        self.record = record if record is not None else IndexRecord()
        self.batch_size = batch_size
        self.write_guard = write_guard or nullcontext
        self._adopted = False

    @property
    def settings(self) -> dict[str, Any]:
        """What chunk ids depend on besides content: the chunker and the embedder."""
        return {"chunker": _chunker_settings(self.chunker), "embedder": self.embedder.model_id}

    # -- public operations -----------------------------------------------------------

    def add(
        self,
        sources: Iterable[Source],
        *,
        include: Sequence[str] = ("**/*",),
        exclude: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index files, folders (walked with ``include``/``exclude`` globs) and documents.

        Unchanged sources (same content hash, same settings) are skipped, changed ones
        replaced, new ones added.
        """
        began = time.perf_counter()
        tally = _Tally()
        self.recover()
        self._add(sources, include, exclude, progress, tally)
        return tally.report(began)

    def sync(
        self,
        root: str | Path,
        *,
        include: Sequence[str] = ("**/*",),
        exclude: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> IndexReport:
        """Make the index under ``root`` match the folder: ``add`` it, then delete the
        sources under ``root`` that the walk no longer finds (deleted files, or files
        that no longer match ``include``/``exclude``)."""
        began = time.perf_counter()
        tally = _Tally()
        self.recover()
        root_path = Path(root)
        if root_path.exists():
            self._add([root_path], include, exclude, progress, tally)
        prefix = str(root_path)
        below = prefix if prefix.endswith(os.sep) else prefix + os.sep
        # Sources under a folder that could not be listed are not known to be gone.
        hidden = tuple(u if u.endswith(os.sep) else u + os.sep for u in tally.unlisted)
        gone = [
            s
            for s in self.record.sources()
            if (s == prefix or s.startswith(below))
            and s not in tally.seen
            and not s.startswith(hidden)
        ]
        if gone:
            tally.chunks_deleted += self._remove(gone)
            tally.deleted.extend(gone)
        return tally.report(began)

    def delete(self, source: str) -> int:
        """Remove every chunk of ``source``; returns how many."""
        self.recover()
        return self._remove([source])

    def recover(self) -> list[str]:
        """Repair the sources a crash left pending; returns them.

        A pending source whose new chunks are all in the store is rolled forward (its
        stale chunks removed, the keyword index completed); otherwise it is rolled back
        to the chunks it had, minus any the store no longer holds, with its content
        hash cleared so the next ``add`` re-indexes it. The first call also adopts a
        knowledge base built before the record existed (see :meth:`adopt`).
        """
        pending = self.record.pending()
        if pending:
            self.repair(pending)
        if not self._adopted:
            self._adopted = True
            if self.record.chunk_total() != self.store.count():
                self.adopt()
        return [e.source for e in pending]

    def repair(self, pending: list[RecordEntry]) -> None:
        """Roll each pending entry forward or back from what the store holds (see
        :meth:`recover`); chunks of the source beyond the outcome are removed."""
        repair_pending(self, pending)

    def adopt(self) -> int:
        """Make the record list exactly what the store holds; returns sources changed.

        For a knowledge base built before the record existed, or written by a ragkit
        that did not keep it (an older version): every source whose chunks in the store
        differ from its entry is recorded with the store's chunks and an unknown
        content hash, so the next ``add`` re-checks it once (unchanged chunks are not
        written again; vectors come from the embedding cache). Entries with no chunk
        left in the store are dropped. ``recover`` calls this when the chunk counts of
        the record and the store disagree.
        """
        return adopt_store(self)

    # -- the work --------------------------------------------------------------------

    def _candidates(
        self,
        sources: Iterable[Source],
        include: Sequence[str],
        exclude: Sequence[str],
        tally: _Tally,
        settings: str,
    ) -> Iterator[tuple[str, str, list[Document] | None, Windows | None]]:
        """(source, content hash, documents, windows): documents is None when unchanged,
        windows is not None when the loader streams the file (documents are then [])."""
        from ragkit.loaders.auto import unreadable_reason, walk

        known = self.record.entries()  # one query, not one per file
        loader = self.loader
        for item in sources:
            if isinstance(item, Document):
                tally.seen.add(item.source)
                yield item.source, document_hash([item]), [item], None
                continue
            root = Path(item)
            if not root.exists():
                tally.failed.append(FileIssue(str(item), "no such file or folder; check the path"))
                continue

            def unlisted(folder: Path, exc: OSError) -> None:
                tally.unlisted.append(str(folder))
                tally.failed.append(FileIssue(str(folder), unreadable_reason(folder, exc)))

            for path in walk(root, include=include, exclude=exclude, on_error=unlisted):
                source = str(path)
                tally.seen.add(source)
                try:
                    digest = content_hash(path)
                except OSError as exc:
                    tally.failed.append(FileIssue(source, unreadable_reason(path, exc)))
                    continue
                entry = known.get(source)
                if (
                    entry is not None
                    and entry.state == "done"
                    and entry.content_hash == digest
                    and entry.settings_hash == settings
                ):
                    yield source, digest, None, None
                    continue
                try:
                    windows = loader.windows(path) if isinstance(loader, StreamingLoader) else None
                    docs = loader.load(path) if windows is None else []
                except LoaderError as exc:
                    tally.failed.append(FileIssue(source, exc.reason))
                    continue
                except Exception as exc:  # a broken file must never stop the folder
                    logger.debug("loading %s failed", path, exc_info=True)
                    tally.failed.append(
                        FileIssue(source, f"could not be read ({type(exc).__name__}: {exc})")
                    )
                    continue
                yield source, digest, docs, windows

    def _add(
        self,
        sources: Iterable[Source],
        include: Sequence[str],
        exclude: Sequence[str],
        progress: Progress | None,
        tally: _Tally,
    ) -> None:
        settings = settings_hash(self.settings)
        pending: list[_Pending] = []
        queued = 0
        candidates = self._candidates(sources, include, exclude, tally, settings)
        for done, (source, digest, docs, windows) in enumerate(candidates, 1):
            if windows is not None:  # a big file: its own writes, a window at a time
                self._flush(pending, tally, settings)
                queued = 0
                write_streamed(
                    self, source, digest=digest, windows=windows, settings=settings, tally=tally
                )
            elif docs is None:
                tally.unchanged.append(source)
            else:
                queued += self._plan(
                    source,
                    digest=digest,
                    docs=docs,
                    settings=settings,
                    pending=pending,
                    tally=tally,
                )
                if queued >= self.batch_size:
                    self._flush(pending, tally, settings)
                    queued = 0
            if progress is not None:
                progress(source, done)
        self._flush(pending, tally, settings)

    def _plan(
        self,
        source: str,
        *,
        digest: str,
        docs: list[Document],
        settings: str,
        pending: list[_Pending],
        tally: _Tally,
    ) -> int:
        """Queue the write one loaded source needs; returns how many chunks it adds."""
        for doc in docs:
            empty_pages = doc.metadata.get("pages_without_text")
            if empty_pages:
                tally.warnings.append(
                    FileIssue(source, f"pages without a text layer were skipped: {empty_pages}")
                )
        chunks = list({c.id: c for doc in docs for c in self.chunker.split(doc)}.values())
        if not chunks:
            tally.failed.append(FileIssue(source, "no text to index (empty after loading)"))
            return 0
        entry = self.record.get(source)
        # The record is the list of what the store holds (recover() keeps it so), which
        # spares a scan of the store per file.
        previous = set(entry.chunk_ids if entry else ())
        wanted = tuple(sorted(c.id for c in chunks))
        # A chunk id hashes source, offset and text; metadata (a title, a page label)
        # can change under the same id, so compare the stored chunks too.
        stored = {c.id: c for c in self.store.get(wanted)}
        fresh = [c for c in chunks if stored.get(c.id) != c]
        if not fresh and previous == set(wanted):
            # Same chunks (e.g. content hash unknown, or a touched file): record only.
            self.record.put([RecordEntry(source, digest, wanted, settings)])
            tally.unchanged.append(source)
            return 0
        pending.append(
            _Pending(source, digest, fresh, wanted, tuple(sorted(previous)), entry is not None)
        )
        return len(fresh)

    def _flush(self, pending: list[_Pending], tally: _Tally, settings: str) -> None:
        if not pending:
            return
        new = [c for p in pending for c in p.chunks]
        # Embed before anything is marked pending: a crash here leaves the kb as it
        # was, and the vectors already computed stay in the embedding cache.
        vectors = self.embedder.embed_documents([c.text for c in new]) if new else None
        stale = sorted({i for p in pending for i in set(p.previous) - set(p.wanted)})
        self.record.begin(
            [Change(p.source, p.content_hash, settings, p.wanted, p.previous) for p in pending]
        )
        with self.write_guard():
            if new:
                assert vectors is not None
                self.store.upsert(new, vectors)
                if self.keyword is not None:
                    self.keyword.upsert(new)
            if stale:
                self.store.delete(stale)
                if self.keyword is not None:
                    self.keyword.delete(stale)
            self.record.finish(done=[p.source for p in pending])
        for p in pending:
            tally.chunks_added += len(p.chunks)
            tally.chunks_deleted += len(set(p.previous) - set(p.wanted))
            (tally.updated if p.existed else tally.added).append(p.source)
        pending.clear()

    def _remove(self, sources: Sequence[str]) -> int:
        changes = []
        total = 0
        for source in sources:
            entry = self.record.get(source)
            ids = set(self.store.ids({"source": source})) | set(entry.chunk_ids if entry else ())
            total += len(held_ids(self.store, ids))
            changes.append(Change(source, entry.content_hash if entry else "", "", (), tuple(ids)))
        self.record.begin(changes)
        doomed = sorted({i for c in changes for i in c.previous_ids})
        with self.write_guard():
            if doomed:
                self.store.delete(doomed)
                if self.keyword is not None:
                    self.keyword.delete(doomed)
            self.record.finish(removed=list(sources))
        return total
