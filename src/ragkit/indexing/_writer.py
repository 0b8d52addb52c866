"""Writing one batch while the next is loaded, chunked and embedded.

The model is most of an ingest; the store, keyword index and record writes of a batch
(Chroma's own SQLite and HNSW index: about half a millisecond a chunk) need not wait
for it. :class:`BatchWriter` embeds a batch on the calling thread, then hands its
writes to one background thread and returns, so the caller goes on with the next
batch. At most one batch is in flight and batches are written in order, each under
the record's protocol (pending, writes, done), so a crash at any moment leaves what a
crash of the one-thread ingest could leave: the only work done early is embedding,
whose vectors go to the cache.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ragkit.indexing._batch import Pending, Tally, embed, write

if TYPE_CHECKING:
    from ragkit.indexing.indexer import Indexer

__all__ = ["BatchWriter"]


class BatchWriter:
    """Embeds queued batches here and writes them on a background thread, in order."""

    def __init__(self, indexer: Indexer, tally: Tally, settings: str) -> None:
        self._indexer, self._tally, self._settings = indexer, tally, settings
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ragkit-write")
        self._inflight: Future[None] | None = None

    def flush(self, pending: list[Pending]) -> None:
        """Embed the queued sources, then write them behind the caller; empty the queue."""
        if not pending:
            return
        batch = list(pending)
        pending.clear()
        new, vectors = embed(self._indexer, batch)
        self.wait()  # the batch before is written (or its error raised) first
        self._inflight = self._pool.submit(
            write,
            self._indexer,
            batch,
            new=new,
            vectors=vectors,
            tally=self._tally,
            settings=self._settings,
        )

    def wait(self) -> None:
        """Block until the batch in flight is written; raise its error, if any."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.result()

    def close(self) -> None:
        """Let the batch in flight finish (its error, if any, is not raised) and stop.

        Call :meth:`wait` first on the normal path; this is the ``finally`` that keeps a
        write from outliving the ingest (and its lock) when the ingest fails.
        """
        self._pool.shutdown(wait=True)
