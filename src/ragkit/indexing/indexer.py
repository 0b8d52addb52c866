"""Load, chunk, embed and store: the ingest side of the pipeline, incremental and crash safe."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ragkit.backends.base import KnowledgeBaseBackend, Record, RecordEntry, settings_hash
from ragkit.indexing._batch import Pending, Tally, flush, plan, remove
from ragkit.indexing._sources import Source, candidates, content_hash, document_hash
from ragkit.indexing.repair import adopt_store, repair_pending
from ragkit.indexing.streamed import write_streamed
from ragkit.protocols import Chunker, Embedder, Loader, VectorStore
from ragkit.types import IndexReport

__all__ = ["Indexer", "Progress", "Source", "content_hash", "document_hash"]

#: Called after each file or document with (what it was, how many done so far).
Progress = Callable[[str, int], None]


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

    Everything it reads and writes is the backend's
    (:class:`~ragkit.backends.base.KnowledgeBaseBackend`: a kb folder, PostgreSQL or
    Milvus). The backend's record keeps, per source, the hash
    of its content, its chunk ids and the settings that made them. ``add`` skips a
    file whose bytes and settings are unchanged without loading it, replaces the
    chunks of a changed one (new chunks written before stale ones are removed), and
    indexes new ones; ``sync`` also removes sources that vanished from a folder. A
    file that fails to load is reported with its reason and skipped; its previous
    chunks, if any, stay.

    Every batch is one :class:`~ragkit.backends.base.Batch` (sources pending, chunks
    written, sources done): a database backend applies it in one transaction, the
    local folder in that order, so a crash at any moment is repaired by :meth:`recover`
    on the next write.
    A file the loader streams (see :class:`~ragkit.protocols.StreamingLoader`: plain
    text over 4 MiB) is chunked, embedded and written a window at a time, in memory
    that does not grow with the file (see :mod:`ragkit.indexing.streamed`).

    Example:
        >>> indexer = Indexer(loader, chunker, embedder, LocalBackend())  # doctest: +SKIP
        >>> report = indexer.add(["docs/"])  # doctest: +SKIP
        >>> report = indexer.sync("docs/")  # doctest: +SKIP

    Args:
        loader: reads one file (``AutoLoader`` picks the format by content).
        chunker: splits documents.
        embedder: embeds chunk texts.
        backend: where the kb lives: its store, keyword index and record.
        batch_size: chunks embedded and written together (1,024: the embedder sorts a
            batch by length, and larger batches pad less; 256 embedded SciFact chunks
            ~12 % slower, docs/benchmarks/ingest.md).
    """

    def __init__(
        self,
        loader: Loader,
        chunker: Chunker,
        embedder: Embedder,
        backend: KnowledgeBaseBackend,
        *,
        batch_size: int = 1024,
    ) -> None:
        self.loader = loader
        self.chunker = chunker
        self.embedder = embedder
        self.backend = backend
        self.batch_size = batch_size
        self._adopted = False

    @property
    def store(self) -> VectorStore:
        """The backend's chunks and vectors."""
        return self.backend.store

    @property
    def record(self) -> Record:
        """The backend's record of indexed sources."""
        return self.backend.record

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
        tally = Tally()
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
        tally = Tally()
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
            tally.chunks_deleted += remove(self.backend, gone)
            tally.deleted.extend(gone)
        return tally.report(began)

    def delete(self, source: str) -> int:
        """Remove every chunk of ``source``; returns how many."""
        self.recover()
        return remove(self.backend, [source])

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
        repair_pending(self.backend, pending)

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
        return adopt_store(self.backend)

    # -- the work --------------------------------------------------------------------

    def _add(
        self,
        sources: Iterable[Source],
        include: Sequence[str],
        exclude: Sequence[str],
        progress: Progress | None,
        tally: Tally,
    ) -> None:
        settings = settings_hash(self.settings)
        pending: list[Pending] = []
        queued = 0
        backend, embedder = self.backend, self.embedder
        found = candidates(
            self.loader,
            backend.record,
            sources,
            include=include,
            exclude=exclude,
            tally=tally,
            settings=settings,
        )
        for done, (source, digest, docs, windows) in enumerate(found, 1):
            if windows is not None:  # a big file: its own writes, a window at a time
                flush(backend, embedder, pending, tally, settings)
                queued = 0
                write_streamed(
                    backend,
                    self.chunker,
                    embedder,
                    self.batch_size,
                    source,
                    digest=digest,
                    windows=windows,
                    settings=settings,
                    tally=tally,
                )
            elif docs is None:
                tally.unchanged.append(source)
            else:
                queued += plan(
                    backend,
                    self.chunker,
                    source,
                    digest=digest,
                    docs=docs,
                    settings=settings,
                    pending=pending,
                    tally=tally,
                )
                if queued >= self.batch_size:
                    flush(backend, embedder, pending, tally, settings)
                    queued = 0
            if progress is not None:
                progress(source, done)
        flush(backend, embedder, pending, tally, settings)
