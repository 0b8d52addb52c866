"""Load, chunk, embed and store: the ingest side of the pipeline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ragkit.errors import LoaderError
from ragkit.protocols import Chunker, Embedder, Loader, VectorStore
from ragkit.types import Chunk, Document, FileIssue, IndexReport

__all__ = ["ChunkIndex", "Indexer", "Source"]

logger = logging.getLogger(__name__)

#: Something ``add`` accepts: a file, a folder, or a ready document.
Source = str | Path | Document

#: Called after each file or document with (what it was, how many done so far).
Progress = Callable[[str, int], None]


class ChunkIndex(Protocol):
    """A secondary index fed the same chunks as the store, such as a keyword index."""

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert or replace chunks by id."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        ...


@dataclass
class _Pending:
    source: str
    chunks: list[Chunk]
    stale: list[str]
    existed: bool


@dataclass
class _Tally:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[FileIssue] = field(default_factory=list)
    warnings: list[FileIssue] = field(default_factory=list)
    chunks_added: int = 0
    chunks_deleted: int = 0


class Indexer:
    """Turns files and documents into stored chunks and reports what happened.

    A file that fails to load is recorded in the report with its reason and skipped;
    the rest is indexed. Chunk ids are content hashes, so adding the same file again
    writes nothing new, and a changed file's old chunks are removed after its new ones
    are stored.

    Example:
        >>> indexer = Indexer(loader, chunker, embedder, store)  # doctest: +SKIP
        >>> report = indexer.add(["docs/"])  # doctest: +SKIP

    Args:
        loader: reads one file (``AutoLoader`` picks the format by content).
        chunker: splits documents.
        embedder: embeds chunk texts.
        store: receives chunks and vectors.
        keyword: an index kept in step with ``store`` (same upserts and deletes, in the
            same flush), such as :class:`~ragkit.retrieval.KeywordIndex`.
        batch_size: chunks embedded and written together.
    """

    def __init__(
        self,
        loader: Loader,
        chunker: Chunker,
        embedder: Embedder,
        store: VectorStore,
        *,
        keyword: ChunkIndex | None = None,
        batch_size: int = 256,
    ) -> None:
        self.loader = loader
        self.chunker = chunker
        self.embedder = embedder
        self.store = store
        self.keyword = keyword
        self.batch_size = batch_size

    def _documents(
        self,
        sources: Iterable[Source],
        include: Sequence[str],
        exclude: Sequence[str],
        tally: _Tally,
    ) -> Iterator[tuple[str, list[Document]]]:
        from ragkit.loaders import walk

        for item in sources:
            if isinstance(item, Document):
                yield item.source, [item]
                continue
            root = Path(item)
            if not root.exists():
                tally.failed.append(FileIssue(str(item), "no such file or folder; check the path"))
                continue
            for path in walk(root, include=include, exclude=exclude):
                try:
                    docs = self.loader.load(path)
                except LoaderError as exc:
                    tally.failed.append(FileIssue(str(path), exc.reason))
                    continue
                except Exception as exc:  # a broken file must never stop the folder
                    logger.debug("loading %s failed", path, exc_info=True)
                    tally.failed.append(
                        FileIssue(str(path), f"could not be read ({type(exc).__name__}: {exc})")
                    )
                    continue
                yield str(path), docs

    def _flush(self, pending: list[_Pending], tally: _Tally) -> None:
        new = [c for p in pending for c in p.chunks]
        if new:
            vectors = self.embedder.embed_documents([c.text for c in new])
            self.store.upsert(new, vectors)
            if self.keyword is not None:
                self.keyword.upsert(new)
        for p in pending:
            if p.stale:
                self.store.delete(p.stale)
                if self.keyword is not None:
                    self.keyword.delete(p.stale)
            tally.chunks_added += len(p.chunks)
            tally.chunks_deleted += len(p.stale)
            (tally.updated if p.existed else tally.added).append(p.source)
        pending.clear()

    def add(
        self,
        sources: Iterable[Source],
        *,
        include: Sequence[str] = ("**/*",),
        exclude: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> IndexReport:
        """Index files, folders (walked with ``include``/``exclude`` globs) and documents."""
        began = time.perf_counter()
        tally = _Tally()
        pending: list[_Pending] = []
        queued = 0
        documents = self._documents(sources, include, exclude, tally)
        for done, (source, docs) in enumerate(documents, 1):
            for doc in docs:
                empty_pages = doc.metadata.get("pages_without_text")
                if empty_pages:
                    tally.warnings.append(
                        FileIssue(source, f"pages without a text layer were skipped: {empty_pages}")
                    )
            chunks = [c for doc in docs for c in self.chunker.split(doc)]
            wanted = {c.id for c in chunks}
            existing = set(self.store.ids({"source": source}))
            fresh = [c for c in chunks if c.id not in existing]
            stale = sorted(existing - wanted)
            if not chunks:
                tally.failed.append(FileIssue(source, "no text to index (empty after loading)"))
            elif not fresh and not stale:
                tally.unchanged.append(source)
            else:
                pending.append(_Pending(source, fresh, stale, bool(existing)))
                queued += len(fresh)
                if queued >= self.batch_size:
                    self._flush(pending, tally)
                    queued = 0
            if progress is not None:
                progress(source, done)
        self._flush(pending, tally)
        return IndexReport(
            added=tuple(tally.added),
            updated=tuple(tally.updated),
            unchanged=tuple(tally.unchanged),
            failed=tuple(tally.failed),
            warnings=tuple(tally.warnings),
            chunks_added=tally.chunks_added,
            chunks_deleted=tally.chunks_deleted,
            seconds=time.perf_counter() - began,
        )

    def delete(self, source: str) -> int:
        """Remove every chunk of ``source``; returns how many."""
        ids = self.store.ids({"source": source})
        if ids:
            self.store.delete(ids)
            if self.keyword is not None:
                self.keyword.delete(ids)
        return len(ids)
